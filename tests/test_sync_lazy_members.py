"""`lazy_load_members`: a sync carries the membership of every sender in its timeline,
and of no one else but the user (in a room new to them) and who changed in a gap; a
member this device was already sent is not sent again unless `include_redundant_members`
asks. /messages with lazy loading returns the members of the chunk's senders."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from tests.matrix import MatrixClient, User

pytestmark = pytest.mark.window_sources

LAZY = {"room": {"state": {"lazy_load_members": True}, "timeline": {"limit": 10}}}
REDUNDANT = {
    "room": {
        "state": {"lazy_load_members": True, "include_redundant_members": True},
        "timeline": {"limit": 10},
    }
}


def _members(body: dict[str, Any], room: str) -> dict[str, str]:
    events = body["rooms"]["join"].get(room, {}).get("state", {}).get("events", [])
    return {
        e["state_key"]: e["content"]["membership"] for e in events if e["type"] == "m.room.member"
    }


async def _fill(hs: MatrixClient, user: User, room: str, count: int) -> None:
    for n in range(count):
        await hs.send(user, room, {"n": n}, event_type="a.made.up.filler.type")


async def _room(hs: MatrixClient, count: int) -> tuple[str, list[User]]:
    """A public room of alice (first) and `count - 1` others, all joined."""
    users = [await hs.register() for _ in range(count)]
    room = await hs.create_room(users[0], preset="public_chat", name="A room name")
    for user in users[1:]:
        await hs.join(user, room)
    return room, users


@pytest.mark.syncs_from_database
async def test_an_initial_sync_carries_the_senders_and_oneself(hs: MatrixClient) -> None:
    room, (alice, bob, charlie) = await _room(hs, 3)
    await _fill(hs, bob, room, 10)
    await _fill(hs, charlie, room, 10)
    body = await hs.sync(alice, filter=quote(json.dumps(LAZY)))
    assert _members(body, room) == {alice.user_id: "join", charlie.user_id: "join"}


async def test_an_incremental_sync_carries_only_new_senders(hs: MatrixClient) -> None:
    room, (alice, bob, charlie) = await _room(hs, 3)
    await _fill(hs, bob, room, 10)
    lazy = quote(json.dumps(LAZY))
    first = await hs.sync(alice, filter=lazy)
    assert _members(first, room) == {alice.user_id: "join", bob.user_id: "join"}
    kinds = {e["type"] for e in first["rooms"]["join"][room]["state"]["events"]}
    assert {"m.room.create", "m.room.power_levels", "m.room.name"} <= kinds
    await hs.send(charlie, room, {"msgtype": "m.text", "body": "from charlie"})
    second = await hs.sync(alice, first["next_batch"], filter=lazy)
    assert [
        (e["type"], e["state_key"]) for e in second["rooms"]["join"][room]["state"]["events"]
    ] == [("m.room.member", charlie.user_id)]
    third = await hs.sync(alice, second["next_batch"], filter=lazy)
    assert room not in third["rooms"]["join"]


async def test_members_already_sent_are_not_sent_again_unless_asked(hs: MatrixClient) -> None:
    room, (alice, bob, charlie) = await _room(hs, 3)
    await _fill(hs, bob, room, 10)
    await _fill(hs, charlie, room, 5)
    for chosen, again in ((LAZY, {}), (REDUNDANT, {bob.user_id: "join", charlie.user_id: "join"})):
        sync_filter = quote(json.dumps(chosen))
        first = await hs.sync(alice, filter=sync_filter)
        assert _members(first, room) == {
            alice.user_id: "join",
            bob.user_id: "join",
            charlie.user_id: "join",
        }
        await hs.send(bob, room, {"msgtype": "m.text", "body": "bob again"})
        await hs.send(charlie, room, {"msgtype": "m.text", "body": "charlie again"})
        second = await hs.sync(alice, first["next_batch"], filter=sync_filter)
        assert _members(second, room) == again


async def test_a_gappy_sync_carries_every_member_change_and_the_senders(
    hs: MatrixClient,
) -> None:
    # sytest: "Gapped incremental syncs include all state changes".
    room, (alice, bob, charlie, dave) = await _room(hs, 4)
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=dave)
    await _fill(hs, bob, room, 10)
    lazy = quote(json.dumps(LAZY))
    first = await hs.sync(alice, filter=lazy)
    assert _members(first, room) == {alice.user_id: "join", bob.user_id: "join"}
    await hs.join(dave, room)  # joins in the gap and says nothing
    await _fill(hs, charlie, room, 20)
    second = await hs.sync(alice, first["next_batch"], filter=lazy)
    assert second["rooms"]["join"][room]["timeline"]["limited"] is True
    assert _members(second, room) == {charlie.user_id: "join", dave.user_id: "join"}
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=dave)
    await _fill(hs, charlie, room, 20)
    third = await hs.sync(alice, second["next_batch"], filter=lazy)
    assert _members(third, room) == {dave.user_id: "leave"}


async def test_an_old_member_who_starts_speaking_after_a_gap_is_carried(
    hs: MatrixClient,
) -> None:
    # sytest: "Old members are included in gappy incr LL sync if they start speaking".
    room, (alice, bob, charlie) = await _room(hs, 3)
    await _fill(hs, bob, room, 10)
    lazy = quote(json.dumps(LAZY))
    first = await hs.sync(alice, filter=lazy)
    await _fill(hs, bob, room, 10)
    await _fill(hs, charlie, room, 10)
    second = await hs.sync(alice, first["next_batch"], filter=lazy)
    assert _members(second, room) == {charlie.user_id: "join"}


async def test_a_leave_in_a_timeline_without_a_gap_is_carried(hs: MatrixClient) -> None:
    # sytest: "Leaves are present in non-gapped incremental syncs".
    room, (alice, bob, charlie) = await _room(hs, 3)
    await hs.send(charlie, room, {"msgtype": "m.text", "body": "Hello world"})
    await _fill(hs, bob, room, 10)
    lazy = quote(json.dumps(LAZY))
    first = await hs.sync(alice, filter=lazy)
    assert _members(first, room) == {alice.user_id: "join", bob.user_id: "join"}
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=charlie)
    await _fill(hs, bob, room, 5)
    second = await hs.sync(alice, first["next_batch"], filter=lazy)
    assert second["rooms"]["join"][room]["timeline"]["limited"] is False
    assert _members(second, room) == {charlie.user_id: "leave"}


async def test_messages_with_lazy_loading_return_the_senders_members(
    hs: MatrixClient,
) -> None:
    # Complement: TestRoomMessagesLazyLoading.
    room, (alice, bob, charlie) = await _room(hs, 3)
    await hs.send(bob, room, {"msgtype": "m.text", "body": "from bob"})
    before = (await hs.sync(alice))["next_batch"]
    await hs.send(charlie, room, {"msgtype": "m.text", "body": "from charlie"})
    after = (await hs.sync(alice, before))["next_batch"]
    query = urlencode(
        {"dir": "f", "from": before, "to": after, "filter": json.dumps({"lazy_load_members": True})}
    )
    body = await hs.ok("GET", f"rooms/{room}/messages?{query}", user=alice)
    assert [e["content"]["body"] for e in body["chunk"]] == ["from charlie"]
    assert [(e["state_key"], e["content"]["membership"]) for e in body["state"]] == [
        (charlie.user_id, "join")
    ]
    # Forwards to the newest event: more may follow, so `end` says where to ask again.
    upto_now = urlencode(
        {"dir": "f", "from": before, "filter": json.dumps({"lazy_load_members": True})}
    )
    live = await hs.ok("GET", f"rooms/{room}/messages?{upto_now}", user=alice)
    assert "end" in live
