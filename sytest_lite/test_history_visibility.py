"""Spec: "Room History Visibility": what a user who joins later, or never joins, sees of
a room through /messages, /event, /context, /sync, the v1 room initialSync and /events,
for each setting."""

from __future__ import annotations

from typing import Any

import pytest

from sytest_lite.client import Api, Registered, q

# setting -> (sees before the invite, sees between invite and join)
SEES = {
    "world_readable": (True, True),
    "shared": (True, True),
    "invited": (False, True),
    "joined": (False, False),
}


async def _room(api: Api, owner: Registered, setting: str) -> str:
    room = await api.create_room(owner.access_token, preset="public_chat")
    status, body = await api.put_state(
        owner.access_token, room, "m.room.history_visibility", {"history_visibility": setting}
    )
    assert status == 200, body
    return room


async def _ok(api: Api, user: Registered, path: str) -> Any:
    status, body = await api.request("GET", path, token=user.access_token)
    assert status == 200, (path, status, body)
    return body


@pytest.mark.parametrize("setting", sorted(SEES))
async def test_a_later_joiner_sees_what_the_setting_allows_everywhere(
    api: Api, alice: Registered, bob: Registered, setting: str
) -> None:
    room = await _room(api, alice, setting)
    before = await api.send_text(alice.access_token, room, "before invite")
    await api.membership_action_ok(alice.access_token, room, "invite", bob.user_id)
    invited = await api.send_text(alice.access_token, room, "after invite")
    await api.join_ok(bob.access_token, room)
    after = await api.send_text(alice.access_token, room, "after join")
    sees_before, sees_invited = SEES[setting]
    expected = {before: sees_before, invited: sees_invited, after: True}

    chunk = (await _ok(api, bob, f"/rooms/{q(room)}/messages?dir=b&limit=50"))["chunk"]
    shown = {e["event_id"] for e in chunk}
    assert {event: event in shown for event in expected} == expected
    for event, visible in expected.items():
        status, _ = await api.request(
            "GET", f"/rooms/{q(room)}/event/{q(event)}", token=bob.access_token
        )
        assert status == (200 if visible else 404), (setting, event, status)
        status, _ = await api.request(
            "GET", f"/rooms/{q(room)}/context/{q(event)}", token=bob.access_token
        )
        assert status == (200 if visible else 404), (setting, event, status)
    timeline = (await _ok(api, bob, "/sync?timeout=0"))["rooms"]["join"][room]["timeline"]
    synced = {e["event_id"] for e in timeline["events"]}
    assert {event: event in synced for event in expected} == expected
    snapshot = await _ok(api, bob, f"/rooms/{q(room)}/initialSync?limit=50")
    snapped = {e["event_id"] for e in snapshot["messages"]["chunk"]}
    assert {event: event in snapped for event in expected} == expected


@pytest.mark.parametrize("setting", sorted(SEES))
async def test_a_stranger_reads_only_a_world_readable_room(
    api: Api, alice: Registered, carol: Registered, setting: str
) -> None:
    room = await _room(api, alice, setting)
    message = await api.send_text(alice.access_token, room, "mice")
    readable = setting == "world_readable"
    for path in (
        f"/rooms/{q(room)}/messages?dir=b",
        f"/rooms/{q(room)}/initialSync",
        f"/rooms/{q(room)}/event/{q(message)}",
    ):
        status, body = await api.request("GET", path, token=carol.access_token)
        if readable:
            assert status == 200, (path, body)
        else:
            assert status in (403, 404), (path, status, body)
    status, body = await api.request(
        "GET", f"/events?room_id={q(room)}&timeout=0", token=carol.access_token
    )
    assert status == (200 if readable else 403), body


async def test_one_who_left_sees_nothing_after_leaving(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room = await _room(api, alice, "shared")
    await api.join_ok(bob.access_token, room)
    before = await api.send_text(alice.access_token, room, "before")
    await api.membership_action_ok(bob.access_token, room, "leave")
    after = await api.send_text(alice.access_token, room, "after")
    chunk = (await _ok(api, bob, f"/rooms/{q(room)}/messages?dir=b&limit=50"))["chunk"]
    shown = {e["event_id"] for e in chunk}
    assert before in shown and after not in shown
    status, _ = await api.request(
        "GET", f"/rooms/{q(room)}/event/{q(after)}", token=bob.access_token
    )
    assert status == 404
    archived = await _ok(api, bob, "/sync?timeout=0&filter=" + q('{"room":{"include_leave":true}}'))
    left = archived["rooms"]["leave"][room]["timeline"]["events"]
    assert after not in {e["event_id"] for e in left}
