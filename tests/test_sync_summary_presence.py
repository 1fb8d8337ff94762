"""A joined room's `summary` (its heroes as the spec says), and the presence a sync
carries: of the members of a room just joined, and of others as it changes."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from tests.matrix import MatrixClient, User

pytestmark = pytest.mark.window_sources


def _presence(body: dict[str, Any]) -> dict[str, str]:
    return {e["sender"]: e["content"]["presence"] for e in body["presence"]["events"]}


def _summary(body: dict[str, Any], room: str) -> dict[str, Any]:
    summary: dict[str, Any] = body["rooms"]["join"][room]["summary"]
    return summary


async def _invite(hs: MatrixClient, by: User, room: str, user: User) -> None:
    await hs.ok("POST", f"rooms/{room}/invite", {"user_id": user.user_id}, user=by)


@pytest.mark.syncs_from_database
async def test_heroes_are_the_first_members_by_when_they_joined(hs: MatrixClient) -> None:
    users = [await hs.register() for _ in range(8)]
    me = users[0]
    room = await hs.create_room(me, preset="public_chat")
    # User IDs are random: joining in reverse order of ID makes join order and ID
    # order disagree.
    others = sorted(users[1:], key=lambda user: user.user_id, reverse=True)
    for user in others[:3]:
        await hs.join(user, room)
    await _invite(hs, me, room, others[3])
    for user in others[4:]:
        await hs.join(user, room)
    summary = _summary(await hs.sync(me), room)
    assert summary["m.heroes"] == [user.user_id for user in others[:5]]
    assert summary["m.joined_member_count"] == 7
    assert summary["m.invited_member_count"] == 1


@pytest.mark.syncs_from_database
async def test_heroes_of_a_room_everyone_left_are_those_who_left(hs: MatrixClient) -> None:
    alice, bob, carol = await hs.register(), await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    await hs.join(carol, room)
    for user in (carol, bob):
        await hs.ok("POST", f"rooms/{room}/leave", {}, user=user)
    summary = _summary(await hs.sync(alice), room)
    # In the order of their memberships now: carol left first.
    assert summary["m.heroes"] == [carol.user_id, bob.user_id]
    assert summary["m.joined_member_count"] == 1


@pytest.mark.syncs_from_database
async def test_a_named_room_needs_no_heroes(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    named = await hs.create_room(alice, preset="public_chat", name="Named")
    await hs.join(bob, named)
    summary = _summary(await hs.sync(alice), named)
    assert "m.heroes" not in summary
    assert summary["m.joined_member_count"] == 2


async def test_the_summary_follows_the_name_going_away(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat", name="Named")
    await hs.join(bob, room)
    since = (await hs.sync(alice))["next_batch"]
    await hs.ok("PUT", f"rooms/{room}/state/m.room.name/", {"name": ""}, user=alice)
    body = await hs.sync(alice, since)
    assert _summary(body, room)["m.heroes"] == [bob.user_id]


@pytest.mark.syncs_from_database
async def test_lazy_loading_sends_the_heroes_members(hs: MatrixClient) -> None:
    alice, bob, carol = await hs.register(), await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    await hs.join(carol, room)
    for n in range(12):
        await hs.send(alice, room, {"msgtype": "m.text", "body": f"m{n}"})
    lazy = quote(json.dumps({"room": {"state": {"lazy_load_members": True}}}))
    joined = (await hs.sync(alice, filter=lazy))["rooms"]["join"][room]
    assert joined["summary"]["m.heroes"] == [bob.user_id, carol.user_id]
    members = {e["state_key"] for e in joined["state"]["events"] if e["type"] == "m.room.member"}
    assert members == {alice.user_id, bob.user_id, carol.user_id}


@pytest.mark.syncs_from_database
async def test_a_newly_joined_rooms_members_presence_comes_with_the_join(
    hs: MatrixClient,
) -> None:
    # Complement: "Newly joined room includes presence in incremental sync".
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.ok("PUT", f"presence/{alice.user_id}/status", {"presence": "online"}, user=alice)
    since = (await hs.sync(bob))["next_batch"]
    await hs.sync(bob, since)  # whatever presence was pending is delivered
    since = (await hs.sync(bob, since))["next_batch"]
    await hs.join(bob, room)
    body = await hs.sync(bob, since)
    assert room in body["rooms"]["join"]
    assert _presence(body).get(alice.user_id) == "online"


async def test_presence_changes_of_others_arrive_in_the_incremental_sync(
    hs: MatrixClient,
) -> None:
    # sytest: "User sees updates to presence from other users in the incremental sync".
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    since = (await hs.sync(alice))["next_batch"]
    since = (await hs.sync(alice, since))["next_batch"]
    await hs.sync(bob)  # bob comes online by syncing
    seen: dict[str, str] = {}

    async def bob_is_online() -> bool:
        nonlocal since
        body = await hs.sync(alice, since, wait_ms=1000)
        since = body["next_batch"]
        seen.update(_presence(body))
        return seen.get(bob.user_id) == "online"

    await hs.eventually(bob_is_online)
    await hs.ok("PUT", f"presence/{bob.user_id}/status", {"presence": "unavailable"}, user=bob)
    body = await hs.sync(alice, since, wait_ms=5000)
    assert _presence(body)[bob.user_id] == "unavailable"
