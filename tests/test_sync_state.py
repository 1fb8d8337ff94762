"""The `state` of each room in /sync: what a client overlays to know the room's members,
name and topic at the start of the timeline it is shown (spec, GET /sync: "updates to
the state, between the time indicated by the since parameter, and the start of the
timeline"), for rooms stayed in, joined and left."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from tests.matrix import MatrixClient, User

pytestmark = pytest.mark.window_sources


def _filter(value: dict[str, Any]) -> str:
    return quote(json.dumps(value))


def _state(room: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["type"], e["state_key"]): e for e in room["state"]["events"]}


def _members(events: list[dict[str, Any]]) -> dict[str, str]:
    return {
        e["state_key"]: e["content"]["membership"] for e in events if e["type"] == "m.room.member"
    }


async def _fill(hs: MatrixClient, user: User, room: str, count: int, tag: str = "m") -> None:
    for n in range(count):
        await hs.send(user, room, {"msgtype": "m.text", "body": f"{tag}{n}"})


async def _leave(hs: MatrixClient, user: User, room: str) -> None:
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=user)


async def test_a_gappy_sync_carries_every_state_change_of_the_gap(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    carol, dave = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat", name="Before")
    await hs.join(dave, room)
    small = _filter({"room": {"timeline": {"limit": 2}}})
    since = (await hs.sync(alice, filter=small))["next_batch"]
    # In the gap: bob joins, carol joins and leaves, dave leaves (an old member's leave),
    # and the room's name and topic change; then a burst of messages.
    await hs.join(bob, room)
    await hs.join(carol, room)
    await _leave(hs, carol, room)
    await _leave(hs, dave, room)
    await hs.ok("PUT", f"rooms/{room}/state/m.room.name/", {"name": "After"}, user=alice)
    await hs.ok("PUT", f"rooms/{room}/state/m.room.topic/", {"topic": "news"}, user=alice)
    await _fill(hs, alice, room, 5)
    joined = (await hs.sync(alice, since, filter=small))["rooms"]["join"][room]
    assert joined["timeline"]["limited"] is True
    assert [e["content"]["body"] for e in joined["timeline"]["events"]] == ["m3", "m4"]
    state = _state(joined)
    assert _members(joined["state"]["events"]) == {
        bob.user_id: "join",
        carol.user_id: "leave",
        dave.user_id: "leave",
    }
    assert state[("m.room.name", "")]["content"] == {"name": "After"}
    assert state[("m.room.topic", "")]["content"] == {"topic": "news"}
    # Nothing from before `since`, nothing that is in the timeline.
    assert ("m.room.create", "") not in state


async def test_state_hidden_by_the_timeline_filter_reaches_the_state_section(
    hs: MatrixClient,
) -> None:
    # sytest: "Changes to state are included in an gapped incremental sync".
    alice = await hs.register()
    room = await hs.create_room(alice)
    only_filler = _filter(
        {
            "room": {
                "timeline": {"types": ["a.made.up.filler.type"], "limit": 1},
                "state": {"types": ["a.madeup.test.state"]},
            }
        }
    )
    for key in ("changes", "stays"):
        await hs.ok("PUT", f"rooms/{room}/state/a.madeup.test.state/{key}", {"v": 1}, user=alice)
    first = await hs.sync(alice, filter=only_filler)
    assert len(first["rooms"]["join"][room]["state"]["events"]) == 2
    await hs.ok("PUT", f"rooms/{room}/state/a.madeup.test.state/changes", {"v": 2}, user=alice)
    for n in range(20):
        await hs.send(alice, room, {"n": n}, event_type="a.made.up.filler.type")
    joined = (await hs.sync(alice, first["next_batch"], filter=only_filler))["rooms"]["join"][room]
    assert [(e["state_key"], e["content"]) for e in joined["state"]["events"]] == [
        ("changes", {"v": 2})
    ]


async def test_a_join_the_timeline_filter_hides_is_in_the_state(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    messages = _filter({"room": {"timeline": {"types": ["m.room.message"]}}})
    since = (await hs.sync(alice, filter=messages))["next_batch"]
    await hs.join(bob, room)
    await hs.send(bob, room, {"msgtype": "m.text", "body": "hi, I am bob"})
    joined = (await hs.sync(alice, since, filter=messages))["rooms"]["join"][room]
    assert [e["type"] for e in joined["timeline"]["events"]] == ["m.room.message"]
    assert _members(joined["state"]["events"]) == {bob.user_id: "join"}


@pytest.mark.syncs_from_database
async def test_a_newly_left_room_shows_the_leave_and_no_state(hs: MatrixClient) -> None:
    # sytest: "Newly left rooms appear in the leave section of incremental sync".
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat", name="Left behind")
    await hs.join(bob, room)
    since = (await hs.sync(bob))["next_batch"]
    await hs.send(alice, room, {"msgtype": "m.text", "body": "bye"})
    await _leave(hs, bob, room)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "after"})
    left = (await hs.sync(bob, since))["rooms"]["leave"][room]
    assert left["state"]["events"] == []
    timeline = left["timeline"]["events"]
    assert [e["type"] for e in timeline] == ["m.room.message", "m.room.member"]
    assert timeline[-1]["state_key"] == bob.user_id
    assert timeline[-1]["content"]["membership"] == "leave"


@pytest.mark.syncs_from_database
@pytest.mark.parametrize("setting", ["joined", "invited"])
async def test_own_leave_is_shown_whatever_the_history_visibility(
    hs: MatrixClient, setting: str
) -> None:
    # sytest: "We should see our own leave event, even if history_visibility is restricted".
    alice = await hs.register()
    room = await hs.create_room(alice)
    visibility = {"history_visibility": setting}
    await hs.ok("PUT", f"rooms/{room}/state/m.room.history_visibility/", visibility, user=alice)
    include_leave = _filter({"room": {"include_leave": True}})
    since = (await hs.sync(alice, filter=include_leave))["next_batch"]
    await _leave(hs, alice, room)
    left = (await hs.sync(alice, since, filter=include_leave))["rooms"]["leave"][room]
    assert left["state"]["events"] == []
    assert [(e["type"], e["content"]["membership"]) for e in left["timeline"]["events"]] == [
        ("m.room.member", "leave")
    ]


@pytest.mark.syncs_from_database
async def test_rejecting_an_invite_to_a_joined_only_room_shows_the_leave(
    hs: MatrixClient,
) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice)
    visibility = {"history_visibility": "joined"}
    await hs.ok("PUT", f"rooms/{room}/state/m.room.history_visibility/", visibility, user=alice)
    since = (await hs.sync(bob))["next_batch"]
    await hs.ok("POST", f"rooms/{room}/invite", {"user_id": bob.user_id}, user=alice)
    invited = await hs.sync(bob, since)
    assert room in invited["rooms"]["invite"]
    await _leave(hs, bob, room)
    left = (await hs.sync(bob, invited["next_batch"]))["rooms"]["leave"][room]
    leave = left["timeline"]["events"][-1]
    assert (leave["type"], leave["state_key"]) == ("m.room.member", bob.user_id)
    assert leave["content"]["membership"] == "leave"


@pytest.mark.syncs_from_database
async def test_a_room_joined_and_left_in_one_window_shows_its_state_up_to_the_leave(
    hs: MatrixClient,
) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat", name="Brief")
    since = (await hs.sync(bob))["next_batch"]
    await hs.join(bob, room)
    await _fill(hs, alice, room, 12)
    await _leave(hs, bob, room)
    await hs.ok("PUT", f"rooms/{room}/state/m.room.name/", {"name": "Later"}, user=alice)
    left = (await hs.sync(bob, since))["rooms"]["leave"][room]
    state = _state(left)
    # The room was new to bob: its state at the start of the timeline, not the later name.
    assert state[("m.room.name", "")]["content"] == {"name": "Brief"}
    assert ("m.room.create", "") in state
    assert left["timeline"]["events"][-1]["content"]["membership"] == "leave"


@pytest.mark.syncs_from_database
async def test_a_newly_left_room_appears_in_a_gappy_sync(hs: MatrixClient) -> None:
    # sytest: "Newly left rooms appear in the leave section of gapped sync".
    alice = await hs.register()
    left_room = await hs.create_room(alice)
    busy_room = await hs.create_room(alice)
    small = _filter({"room": {"timeline": {"limit": 1}, "include_leave": True}})
    since = (await hs.sync(alice, filter=small))["next_batch"]
    await _leave(hs, alice, left_room)
    await _fill(hs, alice, busy_room, 20)
    body = await hs.sync(alice, since, filter=small)
    assert body["rooms"]["join"][busy_room]["timeline"]["limited"] is True
    assert body["rooms"]["leave"][left_room]["state"]["events"] == []


@pytest.mark.syncs_from_database
@pytest.mark.parametrize("setting", ["joined", "invited"])
@pytest.mark.parametrize("before, after", [(0, 0), (30, 0), (0, 30), (30, 30)])
async def test_first_sync_of_a_private_room_has_its_state_and_own_join(
    hs: MatrixClient, setting: str, before: int, after: int
) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="private_chat", name="Private", topic="t")
    visibility = {"history_visibility": setting}
    await hs.ok("PUT", f"rooms/{room}/state/m.room.history_visibility/", visibility, user=alice)
    since = (await hs.sync(bob))["next_batch"]
    await _fill(hs, alice, room, before, "before")
    await hs.ok("POST", f"rooms/{room}/invite", {"user_id": bob.user_id}, user=alice)
    await hs.join(bob, room)
    await _fill(hs, alice, room, after, "after")
    for body in (await hs.sync(bob, since), await hs.sync(bob)):
        joined = body["rooms"]["join"][room]
        seen = joined["state"]["events"] + joined["timeline"]["events"]
        kinds = {(e["type"], e["state_key"]) for e in seen if "state_key" in e}
        assert {
            ("m.room.create", ""),
            ("m.room.name", ""),
            ("m.room.topic", ""),
            ("m.room.power_levels", ""),
            ("m.room.join_rules", ""),
            ("m.room.history_visibility", ""),
            ("m.room.member", alice.user_id),
            ("m.room.member", bob.user_id),
        } <= kinds
        assert _members(seen)[bob.user_id] == "join"
        bodies = [e["content"].get("body", "") for e in joined["timeline"]["events"]]
        assert not any(b.startswith("before") for b in bodies)


@pytest.mark.syncs_from_database
@pytest.mark.parametrize(
    "sync_filter",
    [
        {"room": {"state": {"lazy_load_members": True}}},
        {"room": {"timeline": {"limit": 1}}},
        {"room": {"timeline": {"types": ["m.room.message"], "limit": 3}}},
        {"room": {"timeline": {"not_types": ["m.room.member"]}}},
    ],
)
async def test_first_sync_of_a_joined_only_room_has_the_own_join_whatever_the_filter(
    hs: MatrixClient, sync_filter: dict[str, Any]
) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat", name="Private")
    visibility = {"history_visibility": "joined"}
    await hs.ok("PUT", f"rooms/{room}/state/m.room.history_visibility/", visibility, user=alice)
    chosen = _filter(sync_filter)
    since = (await hs.sync(bob, filter=chosen))["next_batch"]
    await _fill(hs, alice, room, 25, "before")
    await hs.join(bob, room)
    await _fill(hs, alice, room, 25, "after")
    for body in (await hs.sync(bob, since, filter=chosen), await hs.sync(bob, filter=chosen)):
        joined = body["rooms"]["join"][room]
        seen = joined["state"]["events"] + joined["timeline"]["events"]
        assert _members(seen)[bob.user_id] == "join"
        assert ("m.room.name", "") in {(e["type"], e.get("state_key")) for e in seen}
