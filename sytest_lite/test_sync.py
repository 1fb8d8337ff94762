"""/sync as a client sees it: initial, incremental, long-poll, sections, errors."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import quote

from sytest_lite.client import Api, Registered, assert_error, q


async def _sync(api: Api, user: Registered, query: str = "timeout=0") -> dict[str, Any]:
    status, body = await api.request("GET", f"/sync?{query}", token=user.access_token)
    assert status == 200, body
    assert isinstance(body, dict)
    return body


def _messages(body: dict[str, Any], room: str) -> list[str]:
    events = body["rooms"]["join"].get(room, {}).get("timeline", {}).get("events", [])
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


async def test_initial_sync_has_the_spec_sections(api: Api, alice: Registered) -> None:
    room = await api.create_room(alice.access_token, name="sync room")
    await api.send_text(alice.access_token, room, "hello")
    body = await _sync(api, alice)
    assert isinstance(body["next_batch"], str)
    assert set(body["rooms"]) >= {"join", "invite", "leave"}
    joined = body["rooms"]["join"][room]
    assert set(joined) >= {"timeline", "state", "ephemeral", "account_data"}
    assert _messages(body, room) == ["hello"]
    assert "prev_batch" in joined["timeline"]


async def test_incremental_sync_has_only_what_is_new(api: Api, alice: Registered) -> None:
    room = await api.create_room(alice.access_token)
    await api.send_text(alice.access_token, room, "old")
    since = (await _sync(api, alice))["next_batch"]
    await api.send_text(alice.access_token, room, "new")
    body = await _sync(api, alice, f"since={since}&timeout=0")
    assert _messages(body, room) == ["new"]


async def test_long_poll_returns_when_another_user_speaks(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room = await api.create_room(alice.access_token, preset="public_chat")
    await api.join_ok(bob.access_token, room)
    since = (await _sync(api, bob))["next_batch"]
    poll = asyncio.create_task(_sync(api, bob, f"since={since}&timeout=10000"))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await api.send_text(alice.access_token, room, "ping")
    body = await poll
    assert time.monotonic() - started < 2
    assert _messages(body, room) == ["ping"]


async def test_invite_shows_in_the_invite_section(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room = await api.create_room(alice.access_token, name="invited")
    await api.membership_action_ok(alice.access_token, room, "invite", bob.user_id)
    body = await _sync(api, bob)
    events = body["rooms"]["invite"][room]["invite_state"]["events"]
    assert any(e["type"] == "m.room.name" and e["content"]["name"] == "invited" for e in events)


async def test_bad_since_is_invalid_param(api: Api, alice: Registered) -> None:
    status, body = await api.request("GET", "/sync?since=nonsense", token=alice.access_token)
    assert_error(status, body, 400, "M_INVALID_PARAM")


async def test_bad_inline_filter_is_a_json_error(api: Api, alice: Registered) -> None:
    status, body = await api.request("GET", "/sync?filter=%7Bnope", token=alice.access_token)
    assert status == 400, body
    assert isinstance(body, dict) and body["errcode"] in ("M_NOT_JSON", "M_BAD_JSON")


async def test_sync_needs_a_token(api: Api) -> None:
    status, body = await api.request("GET", "/sync")
    assert_error(status, body, 401, "M_MISSING_TOKEN")


# Sync correctness (issue 14): gaps, rooms left, lazy loading, filtered timelines,
# summaries and presence, and the v1-era endpoints built on the same sync.


def _filter(value: dict[str, Any]) -> str:
    return quote(json.dumps(value))


def _members(room: dict[str, Any]) -> dict[str, str]:
    return {
        e["state_key"]: e["content"]["membership"]
        for e in room["state"]["events"]
        if e["type"] == "m.room.member"
    }


async def _fill(api: Api, user: Registered, room: str, count: int) -> None:
    for n in range(count):
        status, body = await api.send(user.access_token, room, "a.made.up.filler.type", {"n": n})
        assert status == 200, body


async def test_gappy_sync_state_has_who_joined_and_left_in_the_gap(
    api: Api, alice: Registered, bob: Registered, carol: Registered
) -> None:
    room = await api.create_room(alice.access_token, preset="public_chat")
    await api.join_ok(carol.access_token, room)
    small = _filter({"room": {"timeline": {"limit": 2}}})
    since = (await _sync(api, alice, f"filter={small}"))["next_batch"]
    await api.join_ok(bob.access_token, room)
    await api.membership_action_ok(carol.access_token, room, "leave")
    await _fill(api, alice, room, 5)
    body = await _sync(api, alice, f"since={since}&filter={small}")
    joined = body["rooms"]["join"][room]
    assert joined["timeline"]["limited"] is True
    assert _members(joined) == {bob.user_id: "join", carol.user_id: "leave"}


async def test_newly_left_room_has_own_leave_and_no_state_even_if_joined_only(
    api: Api, alice: Registered
) -> None:
    room = await api.create_room(alice.access_token)
    status, _ = await api.put_state(
        alice.access_token, room, "m.room.history_visibility", {"history_visibility": "joined"}
    )
    assert status == 200
    since = (await _sync(api, alice))["next_batch"]
    await api.membership_action_ok(alice.access_token, room, "leave")
    left = (await _sync(api, alice, f"since={since}"))["rooms"]["leave"][room]
    assert left["state"]["events"] == []
    (leave,) = left["timeline"]["events"]
    assert (leave["type"], leave["content"]["membership"]) == ("m.room.member", "leave")


async def test_filtered_timeline_fills_up_to_its_limit(api: Api, alice: Registered) -> None:
    room = await api.create_room(alice.access_token)
    only = _filter({"room": {"timeline": {"types": ["m.room.message"], "limit": 2}}})
    since = (await _sync(api, alice, f"filter={only}"))["next_batch"]
    for text in ("one", "two", "three"):
        await api.send_text(alice.access_token, room, text)
        await _fill(api, alice, room, 6)
    timeline = (await _sync(api, alice, f"since={since}&filter={only}"))["rooms"]["join"][room][
        "timeline"
    ]
    assert [e["content"]["body"] for e in timeline["events"]] == ["two", "three"]
    assert timeline["limited"] is True


async def test_lazy_loading_sends_a_senders_member_once(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room = await api.create_room(alice.access_token, preset="public_chat", name="LL")
    await api.join_ok(bob.access_token, room)
    await api.send_text(alice.access_token, room, "welcome")
    lazy = _filter({"room": {"state": {"lazy_load_members": True}, "timeline": {"limit": 1}}})
    first = await _sync(api, alice, f"filter={lazy}")
    assert set(_members(first["rooms"]["join"][room])) == {alice.user_id}
    await api.send_text(bob.access_token, room, "hi")
    second = await _sync(api, alice, f"since={first['next_batch']}&filter={lazy}")
    assert _members(second["rooms"]["join"][room]) == {bob.user_id: "join"}
    await api.send_text(bob.access_token, room, "again")
    third = await _sync(api, alice, f"since={second['next_batch']}&filter={lazy}")
    assert _members(third["rooms"]["join"][room]) == {}


async def test_heroes_in_join_order_and_none_for_a_named_room(
    api: Api, alice: Registered, bob: Registered, carol: Registered
) -> None:
    unnamed = await api.create_room(alice.access_token, preset="public_chat")
    named = await api.create_room(alice.access_token, preset="public_chat", name="Named")
    for room in (unnamed, named):
        await api.join_ok(carol.access_token, room)
        await api.join_ok(bob.access_token, room)
    rooms = (await _sync(api, alice))["rooms"]["join"]
    assert rooms[unnamed]["summary"]["m.heroes"] == [carol.user_id, bob.user_id]
    assert "m.heroes" not in rooms[named]["summary"]


async def test_joining_brings_the_room_members_presence(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room = await api.create_room(alice.access_token, preset="public_chat")
    status, _ = await api.request(
        "PUT",
        f"/presence/{q(alice.user_id)}/status",
        json={"presence": "online"},
        token=alice.access_token,
    )
    assert status == 200
    since = (await _sync(api, bob))["next_batch"]
    since = (await _sync(api, bob, f"since={since}"))["next_batch"]
    await api.join_ok(bob.access_token, room)
    body = await _sync(api, bob, f"since={since}")
    presence = {e["sender"]: e["content"]["presence"] for e in body["presence"]["events"]}
    assert presence.get(alice.user_id) == "online"


async def test_v1_initial_sync_and_event_stream(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room = await api.create_room(alice.access_token, preset="public_chat")
    await api.join_ok(bob.access_token, room)
    await api.send_text(alice.access_token, room, "first")
    status, snapshot = await api.request("GET", "/initialSync?limit=5", token=bob.access_token)
    assert status == 200, snapshot
    (info,) = [r for r in snapshot["rooms"] if r["room_id"] == room]
    assert info["membership"] == "join"
    assert [e["content"]["body"] for e in info["messages"]["chunk"] if "body" in e["content"]] == [
        "first"
    ]
    await api.send_text(alice.access_token, room, "second")
    token, bodies = snapshot["end"], []
    deadline = time.monotonic() + 10
    while "second" not in bodies:
        assert time.monotonic() < deadline, "the message never came down /events"
        status, page = await api.request(
            "GET", f"/events?from={token}&timeout=1000", token=bob.access_token
        )
        assert status == 200, page
        token = page["end"]
        bodies += [e["content"].get("body") for e in page["chunk"] if e.get("room_id") == room]
