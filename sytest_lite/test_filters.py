"""Spec: "Filtering" — POST /user/{userId}/filter, GET /user/{userId}/filter/{filterId},
and filters given to /sync by ID or inline."""

from __future__ import annotations

import json

from sytest_lite.client import Api, Registered, assert_error, q

FILTER = {
    "room": {
        "state": {"types": ["m.room.*"], "not_rooms": ["!726s6s6q:example.com"]},
        "timeline": {"limit": 10, "types": ["m.room.message"], "not_senders": ["@spam:localhost"]},
        "ephemeral": {"types": ["m.receipt", "m.typing"]},
    },
    "presence": {"types": ["m.presence"]},
    "event_format": "client",
    "event_fields": ["type", "content", "sender"],
}


async def _upload(api: Api, who: Registered, body: object) -> str:
    status, reply = await api.request(
        "POST", f"/user/{q(who.user_id)}/filter", json=body, token=who.access_token
    )
    assert status == 200, reply
    filter_id = reply["filter_id"]
    assert isinstance(filter_id, str) and filter_id and not filter_id.startswith("{"), reply
    return filter_id


async def test_uploaded_filter_can_be_downloaded(api: Api, alice: Registered) -> None:
    filter_id = await _upload(api, alice, FILTER)
    status, body = await api.request(
        "GET", f"/user/{q(alice.user_id)}/filter/{q(filter_id)}", token=alice.access_token
    )
    assert (status, body) == (200, FILTER)


async def test_unknown_filter_id_is_not_found(api: Api, alice: Registered) -> None:
    status, body = await api.request(
        "GET", f"/user/{q(alice.user_id)}/filter/nosuchfilter", token=alice.access_token
    )
    assert_error(status, body, 404, "M_NOT_FOUND")


async def test_filters_of_other_users_are_forbidden(
    api: Api, alice: Registered, bob: Registered
) -> None:
    status, body = await api.request(
        "POST", f"/user/{q(bob.user_id)}/filter", json={}, token=alice.access_token
    )
    assert_error(status, body, 403, "M_FORBIDDEN")
    filter_id = await _upload(api, bob, FILTER)
    status, body = await api.request(
        "GET", f"/user/{q(bob.user_id)}/filter/{q(filter_id)}", token=alice.access_token
    )
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_filter_needs_an_access_token(api: Api, alice: Registered) -> None:
    status, body = await api.request("POST", f"/user/{q(alice.user_id)}/filter", json={})
    assert_error(status, body, 401, "M_MISSING_TOKEN")


async def test_malformed_filters_are_refused(api: Api, alice: Registered) -> None:
    for bad in (
        {"room": {"timeline": {"limit": "ten"}}},
        {"room": {"timeline": {"types": "m.room.message"}}},
        {"event_format": "xml"},
        {"room": []},
    ):
        status, body = await api.request(
            "POST", f"/user/{q(alice.user_id)}/filter", json=bad, token=alice.access_token
        )
        assert_error(status, body, 400, "M_BAD_JSON")
    status, body = await api.request(
        "POST", f"/user/{q(alice.user_id)}/filter", raw_body="{oops", token=alice.access_token
    )
    assert_error(status, body, 400, "M_NOT_JSON")


async def _sync(api: Api, who: Registered, filter_param: str) -> tuple[int, dict]:
    return await api.request(
        "GET", "/sync", token=who.access_token, params={"filter": filter_param, "timeout": "0"}
    )


async def test_sync_applies_an_uploaded_timeline_filter(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    for n in range(5):
        await api.send_text(alice.access_token, room_id, f"m{n}")
    filter_id = await _upload(
        api, alice, {"room": {"timeline": {"limit": 2, "types": ["m.room.message"]}}}
    )
    status, body = await _sync(api, alice, filter_id)
    assert status == 200, body
    timeline = body["rooms"]["join"][room_id]["timeline"]
    assert [e["content"]["body"] for e in timeline["events"]] == ["m3", "m4"], timeline
    assert timeline["limited"] is True


async def test_sync_accepts_an_inline_filter(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    await api.send_text(alice.access_token, room_id, "only")
    inline = json.dumps({"room": {"timeline": {"limit": 1}}})
    status, body = await _sync(api, alice, inline)
    assert status == 200, body
    events = body["rooms"]["join"][room_id]["timeline"]["events"]
    assert [e["content"].get("body") for e in events] == ["only"], events


async def test_sync_refuses_unknown_or_malformed_filters(api: Api, alice: Registered) -> None:
    status, body = await _sync(api, alice, "nosuchfilter")
    assert_error(status, body, 400, "M_INVALID_PARAM")
    status, body = await _sync(api, alice, "{not json")
    assert_error(status, body, 400, "M_NOT_JSON")
