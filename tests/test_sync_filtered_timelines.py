"""A /sync timeline filtered by `types` or `senders` fills up to its `limit` by looking
further back, and its `limited` and `prev_batch` say whether more is left before it."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from tests.matrix import MatrixClient, User

pytestmark = pytest.mark.window_sources

MESSAGES_ONLY = {"types": ["m.room.message"]}


def _filter(timeline: dict[str, Any]) -> str:
    return quote(json.dumps({"room": {"timeline": timeline}}))


def _bodies(room: dict[str, Any]) -> list[str]:
    return [e["content"]["body"] for e in room["timeline"]["events"]]


async def _noise(hs: MatrixClient, user: User, room: str, count: int) -> None:
    for n in range(count):
        await hs.send(user, room, {"n": n}, event_type="com.example.noise")


async def _messages_before(
    hs: MatrixClient, user: User, room: str, token: str, timeline: dict[str, Any]
) -> list[str]:
    query = urlencode({"dir": "b", "from": token, "limit": 50, "filter": json.dumps(timeline)})
    body = await hs.ok("GET", f"rooms/{room}/messages?{query}", user=user)
    return [e["content"]["body"] for e in reversed(body["chunk"])]


async def test_an_incremental_timeline_fills_past_events_its_filter_leaves_out(
    hs: MatrixClient,
) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    only = _filter({**MESSAGES_ONLY, "limit": 3})
    since = (await hs.sync(alice, filter=only))["next_batch"]
    for n in range(3):
        await hs.send(alice, room, {"msgtype": "m.text", "body": f"m{n}"})
        await _noise(hs, alice, room, 12)
    joined = (await hs.sync(alice, since, filter=only))["rooms"]["join"][room]
    assert _bodies(joined) == ["m0", "m1", "m2"]
    assert joined["timeline"]["limited"] is False


async def test_a_filtered_timeline_with_more_than_its_limit_is_limited(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    only = {**MESSAGES_ONLY, "limit": 3}
    since = (await hs.sync(alice, filter=_filter(only)))["next_batch"]
    for n in range(5):
        await hs.send(alice, room, {"msgtype": "m.text", "body": f"m{n}"})
        await _noise(hs, alice, room, 8)
    joined = (await hs.sync(alice, since, filter=_filter(only)))["rooms"]["join"][room]
    assert _bodies(joined) == ["m2", "m3", "m4"]
    assert joined["timeline"]["limited"] is True
    # prev_batch is just before the first event shown: paginating on finds the rest.
    before = await _messages_before(hs, alice, room, joined["timeline"]["prev_batch"], only)
    assert before == ["m0", "m1"]


@pytest.mark.syncs_from_database
async def test_an_initial_timeline_filtered_by_sender_fills_to_its_limit(
    hs: MatrixClient,
) -> None:
    alice, bob, room = await hs.room_of_two()
    for n in range(4):
        await hs.send(bob, room, {"msgtype": "m.text", "body": f"bob{n}"})
        for m in range(6):
            await hs.send(alice, room, {"msgtype": "m.text", "body": f"alice{n}.{m}"})
    by_bob = {**MESSAGES_ONLY, "senders": [bob.user_id], "limit": 3}
    joined = (await hs.sync(alice, filter=_filter(by_bob)))["rooms"]["join"][room]
    assert _bodies(joined) == ["bob1", "bob2", "bob3"]
    assert joined["timeline"]["limited"] is True
    before = await _messages_before(hs, alice, room, joined["timeline"]["prev_batch"], by_bob)
    assert before == ["bob0"]


@pytest.mark.syncs_from_database
async def test_a_newly_joined_rooms_filtered_timeline_says_whether_it_is_whole(
    hs: MatrixClient,
) -> None:
    # Complement: "Newly joined room has correct timeline in incremental sync".
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    for n in range(4):
        await hs.send(alice, room, {"msgtype": "m.text", "body": f"early{n}"})
    only = _filter({**MESSAGES_ONLY, "limit": 10})
    since = (await hs.sync(bob, filter=only))["next_batch"]
    for n in range(4):
        await hs.send(alice, room, {"msgtype": "m.text", "body": f"late{n}"})
    await hs.join(bob, room)
    timeline = (await hs.sync(bob, since, filter=only))["rooms"]["join"][room]["timeline"]
    assert [e["type"] for e in timeline["events"]] == ["m.room.message"] * 8
    assert timeline["limited"] is False
    small = _filter({**MESSAGES_ONLY, "limit": 5})
    timeline = (await hs.sync(bob, since, filter=small))["rooms"]["join"][room]["timeline"]
    assert len(timeline["events"]) == 5
    assert timeline["limited"] is True


@pytest.mark.syncs_from_database
async def test_a_filtered_timeline_never_reaches_back_past_what_the_user_may_see(
    hs: MatrixClient,
) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.ok(
        "PUT",
        f"rooms/{room}/state/m.room.history_visibility/",
        {"history_visibility": "joined"},
        user=alice,
    )
    for n in range(30):
        await hs.send(alice, room, {"msgtype": "m.text", "body": f"hidden{n}"})
    await hs.join(bob, room)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "seen"})
    only = _filter({**MESSAGES_ONLY, "limit": 5})
    timeline = (await hs.sync(bob, filter=only))["rooms"]["join"][room]["timeline"]
    assert [e["content"]["body"] for e in timeline["events"]] == ["seen"]
    assert timeline["limited"] is False
