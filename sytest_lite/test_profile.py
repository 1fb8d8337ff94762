"""Spec: "Profiles" (GET /profile/{userId}, GET/PUT /profile/{userId}/displayname and
/avatar_url) and "Events on change of profile information" (m.room.member in every room)."""

from __future__ import annotations

from typing import Any

from sytest_lite.client import Api, Registered, assert_error, localpart, q

AVATAR = "mxc://localhost/SyTestAvatar01"


async def _put(api: Api, who: Registered, user_id: str, field: str, body: Any) -> tuple[int, Any]:
    return await api.request(
        "PUT", f"/profile/{q(user_id)}/{field}", json=body, token=who.access_token
    )


async def test_a_new_user_has_their_localpart_as_displayname(api: Api, alice: Registered) -> None:
    status, body = await api.request("GET", f"/profile/{q(alice.user_id)}")
    assert (status, body) == (200, {"displayname": localpart(alice.user_id)})


async def test_displayname_and_avatar_url_are_set_and_read_back(
    api: Api, alice: Registered
) -> None:
    assert await _put(api, alice, alice.user_id, "displayname", {"displayname": "Alice"}) == (
        200,
        {},
    )
    assert await _put(api, alice, alice.user_id, "avatar_url", {"avatar_url": AVATAR}) == (200, {})
    assert await api.request("GET", f"/profile/{q(alice.user_id)}/displayname") == (
        200,
        {"displayname": "Alice"},
    )
    assert await api.request("GET", f"/profile/{q(alice.user_id)}/avatar_url") == (
        200,
        {"avatar_url": AVATAR},
    )
    status, body = await api.request("GET", f"/profile/{q(alice.user_id)}")
    assert (status, body) == (200, {"displayname": "Alice", "avatar_url": AVATAR})


async def test_a_displayname_change_reaches_the_other_members(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room = await api.create_room(alice.access_token, preset="public_chat")
    await api.join_ok(bob.access_token, room)
    status, body = await api.request("GET", "/sync?timeout=0", token=bob.access_token)
    assert status == 200, body
    since = body["next_batch"]
    await _put(api, alice, alice.user_id, "displayname", {"displayname": "Alice Renamed"})
    member = await api.state_content(bob.access_token, room, "m.room.member", alice.user_id)
    assert member["displayname"] == "Alice Renamed" and member["membership"] == "join"
    status, body = await api.request(
        "GET", f"/sync?timeout=0&since={since}", token=bob.access_token
    )
    events = body["rooms"]["join"][room]["timeline"]["events"]
    assert any(
        e["type"] == "m.room.member" and e["content"].get("displayname") == "Alice Renamed"
        for e in events
    ), events


async def test_nobody_changes_another_users_profile(
    api: Api, alice: Registered, bob: Registered
) -> None:
    status, body = await _put(api, bob, alice.user_id, "displayname", {"displayname": "x"})
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_an_unknown_user_has_no_profile(api: Api) -> None:
    status, body = await api.request("GET", f"/profile/{q('@no_such_user_here:localhost')}")
    assert_error(status, body, 404, "M_NOT_FOUND")


async def test_bad_profile_values_are_refused(api: Api, alice: Registered) -> None:
    status, body = await _put(api, alice, alice.user_id, "displayname", {"displayname": 7})
    assert_error(status, body, 400, "M_INVALID_PARAM")
    status, body = await _put(api, alice, alice.user_id, "avatar_url", {"avatar_url": "http://x/y"})
    assert_error(status, body, 400, "M_INVALID_PARAM")
    status, body = await _put(api, alice, alice.user_id, "displayname", {"displayname": "x" * 300})
    assert_error(status, body, 400, "M_INVALID_PARAM")
