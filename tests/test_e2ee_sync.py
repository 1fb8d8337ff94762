"""The E2EE sections of /sync: device_lists, one-time key counts and fallback key types."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.e2ee import Device, login_again, upload_device
from tests.matrix import MatrixClient, User

# Each test that starts a server runs against both window sources (tests/conftest.py).
pytestmark = pytest.mark.window_sources


async def _next_batch(hs: MatrixClient, user: User) -> str:
    return str((await hs.ok("GET", "sync?timeout=0", user=user))["next_batch"])


async def _sync(hs: MatrixClient, user: User, since: str, wait_ms: int = 10_000) -> Any:
    return await hs.ok("GET", f"sync?since={since}&timeout={wait_ms}", user=user)


async def test_every_sync_counts_one_time_keys_and_unused_fallback_keys(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    first = await hs.ok("GET", "sync", user=alice)
    assert first["device_one_time_keys_count"] == {"signed_curve25519": 0}
    assert first["device_unused_fallback_key_types"] == []

    device = Device(alice)
    await hs.ok(
        "POST",
        "keys/upload",
        {"one_time_keys": device.one_time_keys(3), "fallback_keys": device.fallback_key()},
        user=alice,
    )
    counted = await _sync(hs, alice, first["next_batch"], wait_ms=0)
    assert counted["device_one_time_keys_count"] == {"signed_curve25519": 3}
    assert counted["device_unused_fallback_key_types"] == ["signed_curve25519"]

    want = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}
    for _ in range(4):
        await hs.ok("POST", "keys/claim", want, user=bob)
    # A message wakes the long-poll; the answer carries the counts as they are now.
    room = await hs.create_room(alice)
    later = await _sync(hs, alice, counted["next_batch"], wait_ms=0)
    assert room in later["rooms"]["join"]
    assert later["device_one_time_keys_count"] == {"signed_curve25519": 0}
    assert later["device_unused_fallback_key_types"] == []

    # Another device of the same user has counts of its own.
    other = await login_again(hs, alice)
    assert (await hs.ok("GET", "sync", user=other))["device_one_time_keys_count"] == {
        "signed_curve25519": 0
    }


async def test_a_room_members_new_keys_wake_a_long_poll_with_device_lists(
    hs: MatrixClient,
) -> None:
    alice, bob, _room = await hs.room_of_two()
    since = await _next_batch(hs, alice)

    poll = asyncio.create_task(_sync(hs, alice, since, wait_ms=20_000))
    await asyncio.sleep(0.2)
    await upload_device(hs, bob)
    reply = await poll

    assert reply["device_lists"] == {"changed": [bob.user_id], "left": []}


@pytest.mark.syncs_from_database
async def test_device_lists_name_nobody_outside_ones_rooms(hs: MatrixClient) -> None:
    alice, _bob, _room = await hs.room_of_two()
    stranger = await hs.register()
    since = await _next_batch(hs, alice)
    await upload_device(hs, stranger)
    room = await hs.create_room(alice)  # something to sync about
    reply = await _sync(hs, alice, since, wait_ms=0)
    assert room in reply["rooms"]["join"]
    assert stranger.user_id not in reply["device_lists"]["changed"]


@pytest.mark.syncs_from_database
async def test_device_lists_name_ones_own_new_device(hs: MatrixClient) -> None:
    alice = await hs.register()
    since = await _next_batch(hs, alice)
    other = await login_again(hs, alice)
    await upload_device(hs, other)
    reply = await _sync(hs, alice, since)
    assert alice.user_id in reply["device_lists"]["changed"]


async def test_someone_joining_is_a_device_list_change(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    since = await _next_batch(hs, alice)

    await hs.join(bob, room)
    reply = await _sync(hs, alice, since)

    assert reply["device_lists"]["changed"] == [bob.user_id]


@pytest.mark.syncs_from_database
async def test_joining_a_room_lists_its_members_as_changed(hs: MatrixClient) -> None:
    alice, bob, carol = await hs.register(), await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    since = await _next_batch(hs, carol)

    await hs.join(carol, room)
    reply = await _sync(hs, carol, since)

    assert sorted(reply["device_lists"]["changed"]) == sorted([alice.user_id, bob.user_id])


async def test_leaving_the_last_shared_room_is_left_but_not_while_another_is_shared(
    hs: MatrixClient,
) -> None:
    alice, bob, first = await hs.room_of_two()
    second = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, second)

    since = await _next_batch(hs, alice)
    await hs.ok("POST", f"rooms/{first}/leave", {}, user=bob)
    still = await _sync(hs, alice, since)
    assert bob.user_id not in still["device_lists"]["left"]

    await hs.ok("POST", f"rooms/{second}/leave", {}, user=bob)
    gone = await _sync(hs, alice, still["next_batch"])
    assert gone["device_lists"] == {"changed": [], "left": [bob.user_id]}

    # The one who left sees the others leave their lists too.
    since_bob = await _next_batch(hs, bob)
    await hs.join(bob, first)
    back = await _sync(hs, bob, since_bob)
    assert back["device_lists"]["changed"] == [alice.user_id]
    await hs.ok("POST", f"rooms/{first}/leave", {}, user=bob)
    left = await _sync(hs, bob, back["next_batch"])
    assert left["device_lists"]["left"] == [alice.user_id]


@pytest.mark.syncs_from_database
async def test_an_initial_sync_lists_no_device_changes(hs: MatrixClient) -> None:
    alice, bob, _room = await hs.room_of_two()
    await upload_device(hs, bob)
    reply = await hs.ok("GET", "sync", user=alice)
    assert reply["device_lists"] == {"changed": [], "left": []}


async def test_a_profile_change_or_a_message_is_no_device_list_change(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    since = await _next_batch(hs, alice)
    # A new display name is a new member event (join after join) in every room of bob's.
    await hs.ok("PUT", f"profile/{bob.user_id}/displayname", {"displayname": "Bob B"}, user=bob)
    await hs.send(bob, room, {"msgtype": "m.text", "body": "hello"})
    reply = await _sync(hs, alice, since)
    assert room in reply["rooms"]["join"]
    assert reply["device_lists"] == {"changed": [], "left": []}


async def test_an_invite_and_a_join_are_changes_a_declined_invite_leaves(
    hs: MatrixClient,
) -> None:
    # As Synapse: an invitee's devices matter to whoever encrypts for invited members.
    alice, carol, dave = await hs.register(), await hs.register(), await hs.register()
    room = await hs.create_room(alice)
    since = await _next_batch(hs, alice)
    await hs.ok("POST", f"rooms/{room}/invite", {"user_id": carol.user_id}, user=alice)
    await hs.ok("POST", f"rooms/{room}/invite", {"user_id": dave.user_id}, user=alice)
    invited = await _sync(hs, alice, since)
    assert invited["device_lists"] == {"changed": sorted([carol.user_id, dave.user_id]), "left": []}

    await hs.join(carol, room)
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=dave)
    answered = await _sync(hs, alice, invited["next_batch"])
    assert answered["device_lists"] == {"changed": [carol.user_id], "left": [dave.user_id]}


@pytest.mark.syncs_from_database
async def test_a_rejected_invite_lists_nobody_as_left(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice)
    await hs.ok("POST", f"rooms/{room}/invite", {"user_id": bob.user_id}, user=alice)
    since = await _next_batch(hs, bob)
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=bob)
    reply = await _sync(hs, bob, since)
    assert room in reply["rooms"]["leave"]
    assert reply["device_lists"] == {"changed": [], "left": []}
