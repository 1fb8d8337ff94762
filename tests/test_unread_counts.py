"""unread_notifications in /sync: the badge a client shows for each joined room.

Counted: the events from others after the user's latest read receipt in the room
that their push rules notify them of (with the default rules: messages and
encrypted events, not edits, reactions, notices or state).
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest

from homeserver.api.app_keys import METRICS
from homeserver.api.sync import SYNC
from homeserver.sync.unread import UnreadCounts, moved_on, shown_counts
from tests.matrix import MatrixClient, User

# Each test that starts a server runs against both window sources (tests/conftest.py).
pytestmark = pytest.mark.window_sources


def _unread(body: dict[str, Any], room: str) -> int | None:
    section = body["rooms"]["join"].get(room)
    if section is None or "unread_notifications" not in section:
        return None
    count = section["unread_notifications"]["notification_count"]
    assert isinstance(count, int)
    return count


async def _read(hs: MatrixClient, user: User, room: str, event_id: str) -> None:
    await hs.ok("POST", f"rooms/{room}/receipt/m.read/{event_id}", {}, user=user)


async def test_each_new_message_from_others_raises_the_count(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    body = await hs.sync(bob)
    assert _unread(body, room) == 0
    counts = []
    for n in range(3):
        await hs.send(alice, room, {"msgtype": "m.text", "body": f"m{n}"})
        body = await hs.sync(bob, body["next_batch"])
        counts.append(_unread(body, room))
    assert counts == [1, 2, 3]


async def test_own_messages_and_state_do_not_count(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    body = await hs.sync(bob)
    await hs.send(bob, room, {"msgtype": "m.text", "body": "mine"})
    await hs.ok("PUT", f"rooms/{room}/state/m.room.topic/", {"topic": "t"}, user=alice)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "theirs"})
    body = await hs.sync(bob, body["next_batch"])
    assert _unread(body, room) == 1


async def test_messages_of_ignored_users_do_not_count(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    troll = await hs.register()
    await hs.join(troll, room)
    await hs.ok(
        "PUT",
        f"user/{bob.user_id}/account_data/m.ignored_user_list",
        {"ignored_users": {troll.user_id: {}}},
        user=bob,
    )
    await hs.send(troll, room, {"msgtype": "m.text", "body": "before"})
    body = await hs.sync(bob)  # built from the database
    assert _unread(body, room) == 0
    for n in range(2):  # answered from memory
        await hs.send(troll, room, {"msgtype": "m.text", "body": f"noise {n}"})
        await hs.send(alice, room, {"msgtype": "m.text", "body": f"signal {n}"})
        body = await hs.sync(bob, body["next_batch"])
        assert _unread(body, room) == n + 1


async def test_a_read_receipt_clears_the_count_and_counting_starts_again(
    hs: MatrixClient,
) -> None:
    alice, bob, room = await hs.room_of_two()
    body = await hs.sync(bob)
    last = ""
    for n in range(2):
        last = await hs.send(alice, room, {"msgtype": "m.text", "body": f"m{n}"})
    body = await hs.sync(bob, body["next_batch"])
    assert _unread(body, room) == 2
    await _read(hs, bob, room, last)
    body = await hs.sync(bob, body["next_batch"])
    assert _unread(body, room) == 0
    await hs.send(alice, room, {"msgtype": "m.text", "body": "after"})
    body = await hs.sync(bob, body["next_batch"])
    assert _unread(body, room) == 1


async def test_a_quiet_room_keeps_its_count_when_another_room_is_busy(hs: MatrixClient) -> None:
    alice, bob, quiet = await hs.room_of_two()
    busy = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, busy)
    body = await hs.sync(bob)
    await hs.send(alice, quiet, {"msgtype": "m.text", "body": "one"})
    body = await hs.sync(bob, body["next_batch"])
    assert _unread(body, quiet) == 1
    for n in range(3):
        await hs.send(alice, busy, {"msgtype": "m.text", "body": f"b{n}"})
        body = await hs.sync(bob, body["next_batch"])
        assert _unread(body, busy) == n + 1
    await hs.send(alice, quiet, {"msgtype": "m.text", "body": "two"})
    body = await hs.sync(bob, body["next_batch"])
    assert _unread(body, quiet) == 2


async def test_every_device_of_the_user_sees_the_same_count(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    phone = await hs.login(bob, device_id="SECOND" + secrets.token_hex(2).upper())
    desk_body, phone_body = await hs.sync(bob), await hs.sync(phone)
    for n in range(2):
        await hs.send(alice, room, {"msgtype": "m.text", "body": f"m{n}"})
        desk_body = await hs.sync(bob, desk_body["next_batch"])
    phone_body = await hs.sync(phone, phone_body["next_batch"])
    assert _unread(desk_body, room) == _unread(phone_body, room) == 2


async def test_every_connection_of_one_device_sees_the_new_count(
    hs: MatrixClient, window_source: str | None
) -> None:
    """A client holding several long-polls on one login (tabs of a web client) gets the
    same count on each. The first woken moves the device's counts on; the others show
    what it kept instead of reading them from the database each."""
    alice, bob, room = await hs.room_of_two()
    since = (await hs.sync(bob))["next_batch"]
    counted = hs.app[SYNC].unread_counts
    read_before = counted["database"]

    async def tab(since: str, marker: str) -> tuple[int | None, str]:
        """Long-poll until the message `marker` arrives: its count and the next token."""
        while True:
            body = await hs.sync(bob, since, wait_ms=60_000)
            since = body["next_batch"]
            timeline = body["rooms"]["join"].get(room, {}).get("timeline", {}).get("events", [])
            if any(event["content"].get("body") == marker for event in timeline):
                return _unread(body, room), since

    held = hs.app[METRICS].held.count

    async def all_held() -> bool:
        return held["long_poll"] >= 3

    sinces = [since] * 3
    for n in (1, 2):
        tabs = [asyncio.create_task(tab(s, f"m{n}")) for s in sinces]
        await hs.eventually(all_held)
        await hs.send(alice, room, {"msgtype": "m.text", "body": f"m{n}"})
        answers = await asyncio.gather(*tabs)
        assert [count for count, _ in answers] == [n, n, n]
        sinces = [next_batch for _, next_batch in answers]
    if window_source == "memory":
        assert counted["database"] == read_before


# --- the counts kept per device stream (homeserver/sync/unread.py) --------------------


def test_kept_counts_move_on_by_what_the_window_added() -> None:
    counts = UnreadCounts()
    main = {"main": (2, 1)}
    counts.keep("@me:hs", "DEV", generation=3, position=10, by_room={"!a:hs": main, "!b:hs": {}})
    kept = counts.at("@me:hs", "DEV", generation=3, position=10)
    assert kept is not None
    added = {"!a:hs": {"main": (1, 0), "$root": (1, 1)}, "!c:hs": {"main": (1, 0)}}
    moved = moved_on(kept, added)
    # !c's count was never kept: it is read, not moved on.
    assert moved == {"!a:hs": {"main": (3, 1), "$root": (1, 1)}}
    # Shown rooms: moved on, kept as they were (!b: nothing new), or to be read (!c).
    assert shown_counts(kept, moved, ["!a:hs", "!b:hs", "!c:hs"]) == (
        {"!a:hs": {"main": (3, 1), "$root": (1, 1)}, "!b:hs": {}},
        ["!c:hs"],
    )


def test_a_stream_is_never_moved_back() -> None:
    counts = UnreadCounts()
    counts.keep("@me:hs", "DEV", 0, position=12, by_room={"!a:hs": {"main": (5, 0)}})
    counts.keep("@me:hs", "DEV", 0, position=11, by_room={"!a:hs": {"main": (4, 0)}})
    assert counts.at("@me:hs", "DEV", 0, position=11) is None
    kept = counts.at("@me:hs", "DEV", 0, position=12)
    assert kept is not None and kept.by_room == {"!a:hs": {"main": (5, 0)}}


def test_kept_counts_hold_only_for_the_stream_and_generation_they_were_kept_at() -> None:
    counts = UnreadCounts()
    counts.keep("@me:hs", "DEV", generation=3, position=10, by_room={"!a:hs": {"main": (2, 0)}})
    assert counts.at("@me:hs", "DEV", 3, position=9) is None  # another point of the stream
    assert counts.at("@me:hs", "DEV", 4, position=10) is None  # the user changed meanwhile
    assert counts.at("@me:hs", "PHONE", 3, position=10) is None  # another device
    kept = counts.at("@me:hs", "DEV", 3, position=10)
    assert kept is not None
    counts.keep("@me:hs", "DEV", 3, position=12, by_room={"!b:hs": {"main": (1, 0)}}, merge=kept)
    moved = counts.at("@me:hs", "DEV", 3, position=12)
    assert moved is not None and moved.by_room == {
        "!a:hs": {"main": (2, 0)},
        "!b:hs": {"main": (1, 0)},
    }


def test_two_connections_woken_by_one_change_count_it_once() -> None:
    counts = UnreadCounts()
    counts.keep("@me:hs", "DEV", 0, position=10, by_room={"!a:hs": {"main": (1, 0)}})
    # Both connections of the device start from the counts kept at 10, and await.
    first = counts.at("@me:hs", "DEV", 0, position=10)
    second = counts.at("@me:hs", "DEV", 0, position=10)
    assert first is not None and second is not None
    first, second = first.snapshot(), second.snapshot()
    added = {"!a:hs": {"main": (1, 0)}}
    counts.keep("@me:hs", "DEV", 0, 11, moved_on(first, added), merge=first)
    counts.keep("@me:hs", "DEV", 0, 11, moved_on(second, added), merge=second)
    kept = counts.at("@me:hs", "DEV", 0, position=11)
    assert kept is not None and kept.by_room == {"!a:hs": {"main": (2, 0)}}


def test_the_oldest_streams_are_forgotten_first() -> None:
    counts = UnreadCounts(max_devices=2)
    for device in ("ONE", "TWO", "THREE"):
        counts.keep("@me:hs", device, 0, 1, {"!a:hs": {"main": (1, 0)}})
    assert counts.at("@me:hs", "ONE", 0, 1) is None
    assert counts.at("@me:hs", "THREE", 0, 1) is not None
