"""Blocks (/_linkchat/v1/blocks): a block ends the relation, ignores the user, and
the server refuses the blocked user's requests, invites and direct chats without
telling them why."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from homeserver.api.app_keys import APPENDER
from homeserver.errors import MatrixError
from homeserver.events import types
from homeserver.events.model import Draft, Event
from tests.matrix import MatrixClient, Reply, User
from tests.test_friends import (
    V1,
    accept,
    assert_refused,
    befriend,
    current_account_data,
    friends_of,
    request_friend,
    requests_of,
)


async def block(hs: MatrixClient, blocker: User, blocked: User) -> None:
    await hs.ok("PUT", f"{V1}/blocks/{blocked.user_id}", {}, user=blocker)


async def blocks_of(hs: MatrixClient, user: User) -> list[str]:
    body = await hs.ok("GET", V1 + "/blocks", user=user)
    return [b["user_id"] for b in body["blocks"]]


def assert_silent_refusal(reply: Reply) -> None:
    """403 M_FORBIDDEN that does not tell the blocked user they are blocked."""
    assert_refused(reply, 403, "M_FORBIDDEN")
    assert "block" not in reply.body["error"].lower(), reply


# --- blocking and unblocking ----------------------------------------------------


async def test_a_block_is_listed_and_ignores_the_user(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    await block(hs, alice, bob)
    body = await hs.ok("GET", V1 + "/blocks", user=alice)
    assert [b["user_id"] for b in body["blocks"]] == [bob.user_id]
    assert body["blocks"][0]["ts"] > 0
    ignored = await current_account_data(hs, alice, "m.ignored_user_list")
    assert ignored == {"ignored_users": {bob.user_id: {}}}
    assert await blocks_of(hs, bob) == []


async def test_blocking_twice_is_harmless(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    await block(hs, alice, bob)
    await block(hs, alice, bob)
    assert await blocks_of(hs, alice) == [bob.user_id]


async def test_unblocking_stops_ignoring_and_allows_requests_again(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    await block(hs, alice, bob)
    await hs.ok("DELETE", f"{V1}/blocks/{bob.user_id}", user=alice)
    assert await blocks_of(hs, alice) == []
    ignored = await current_account_data(hs, alice, "m.ignored_user_list")
    assert ignored == {"ignored_users": {}}
    assert (await request_friend(hs, bob, alice.user_id)).body == {"status": "pending"}


async def test_block_refusals_have_their_own_errcodes(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    reply = await hs.request("PUT", f"{V1}/blocks/{alice.user_id}", {}, user=alice)
    assert_refused(reply, 400, "COM.LINKCHAT_SELF_BLOCK")
    reply = await hs.request("PUT", f"{V1}/blocks/@ghost_user:localhost", {}, user=alice)
    assert_refused(reply, 404, "M_NOT_FOUND")
    reply = await hs.request("PUT", f"{V1}/blocks/ghost", {}, user=alice)
    assert_refused(reply, 400, "M_INVALID_PARAM")
    reply = await hs.request("DELETE", f"{V1}/blocks/{bob.user_id}", user=alice)
    assert_refused(reply, 404, "COM.LINKCHAT_NOT_BLOCKED")
    assert_refused(await hs.request("GET", V1 + "/blocks"), 401, "M_MISSING_TOKEN")


async def test_an_existing_ignore_is_kept_when_blocking_someone_else(hs: MatrixClient) -> None:
    alice, bob, carol = await hs.register(), await hs.register(), await hs.register()
    await block(hs, alice, bob)
    await block(hs, alice, carol)
    ignored = await current_account_data(hs, alice, "m.ignored_user_list")
    assert ignored == {"ignored_users": {bob.user_id: {}, carol.user_id: {}}}
    await hs.ok("DELETE", f"{V1}/blocks/{bob.user_id}", user=alice)
    ignored = await current_account_data(hs, alice, "m.ignored_user_list")
    assert ignored == {"ignored_users": {carol.user_id: {}}}


# --- a block ends relations ----------------------------------------------------


async def test_blocking_a_friend_ends_the_friendship_for_both(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    await befriend(hs, alice, bob)
    await block(hs, alice, bob)
    assert await friends_of(hs, alice) == {} and await friends_of(hs, bob) == {}
    empty = {"friends": {}, "incoming": {}, "outgoing": {}}
    assert await current_account_data(hs, bob, "com.linkchat.friends") == empty
    assert await current_account_data(hs, alice, "com.linkchat.friends") == empty


async def test_blocking_ends_pending_requests_in_both_directions(hs: MatrixClient) -> None:
    alice, bob, carol = await hs.register(), await hs.register(), await hs.register()
    await request_friend(hs, bob, alice.user_id)  # to the blocker
    await request_friend(hs, alice, carol.user_id)  # from the blocker
    await block(hs, alice, bob)
    await block(hs, alice, carol)
    for user in (alice, bob, carol):
        assert await requests_of(hs, user) == {"incoming": {}, "outgoing": {}}


async def test_the_blocked_user_sees_nothing_but_an_ordinary_end(hs: MatrixClient) -> None:
    alice, bob, carol = await hs.register(), await hs.register(), await hs.register()
    await befriend(hs, alice, bob)
    await befriend(hs, alice, carol)
    since = (await hs.sync(bob))["next_batch"]
    await block(hs, alice, bob)
    await hs.ok("DELETE", f"{V1}/friends/{carol.user_id}", user=alice)  # an ordinary removal
    body = await hs.sync(bob, since)
    assert [e["type"] for e in body["account_data"]["events"]] == ["com.linkchat.friends"]
    # What the blocked user can read is exactly what a removed friend can.
    for user in (bob, carol):
        assert await friends_of(hs, user) == {}
        assert await requests_of(hs, user) == {"incoming": {}, "outgoing": {}}
        assert await blocks_of(hs, user) == []
        data = await current_account_data(hs, user, "com.linkchat.friends")
        assert data == {"friends": {}, "incoming": {}, "outgoing": {}}


# --- what a block forbids the blocked user ----------------------------------------


async def test_the_blocked_user_cannot_send_a_friend_request(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    await block(hs, alice, bob)
    assert_silent_refusal(await request_friend(hs, bob, alice.user_id, "please"))
    assert await requests_of(hs, alice) == {"incoming": {}, "outgoing": {}}


async def test_the_blocker_is_told_to_unblock_before_requesting(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    await block(hs, alice, bob)
    reply = await request_friend(hs, alice, bob.user_id)
    assert_refused(reply, 400, "COM.LINKCHAT_USER_BLOCKED")


async def test_the_blocked_user_cannot_invite_the_blocker(hs: MatrixClient) -> None:
    alice, bob, carol = await hs.register(), await hs.register(), await hs.register()
    room = await hs.create_room(bob)
    await block(hs, alice, bob)
    reply = await hs.request("POST", f"rooms/{room}/invite", {"user_id": alice.user_id}, user=bob)
    assert_silent_refusal(reply)
    assert (await hs.sync(alice))["rooms"]["invite"] == {}
    # Others are still invited as usual, and the blocker may still invite.
    await hs.ok("POST", f"rooms/{room}/invite", {"user_id": carol.user_id}, user=bob)
    own = await hs.create_room(alice)
    await hs.ok("POST", f"rooms/{own}/invite", {"user_id": bob.user_id}, user=alice)


async def test_the_blocked_user_cannot_create_a_room_inviting_the_blocker(
    hs: MatrixClient,
) -> None:
    alice, bob, carol = await hs.register(), await hs.register(), await hs.register()
    await block(hs, alice, bob)
    before = await hs.ok("GET", "joined_rooms", user=bob)
    body: dict[str, Any] = {"invite": [carol.user_id, alice.user_id], "name": "party"}
    assert_silent_refusal(await hs.request("POST", "createRoom", body, user=bob))
    assert await hs.ok("GET", "joined_rooms", user=bob) == before  # no room was made


async def test_the_blocked_user_cannot_open_a_direct_chat_with_the_blocker(
    hs: MatrixClient,
) -> None:
    alice, bob = await hs.register(), await hs.register()
    await block(hs, alice, bob)
    body = {"preset": "trusted_private_chat", "is_direct": True, "invite": [alice.user_id]}
    assert_silent_refusal(await hs.request("POST", "createRoom", body, user=bob))


async def test_after_unblocking_the_user_may_invite_again(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(bob)
    await block(hs, alice, bob)
    await hs.ok("DELETE", f"{V1}/blocks/{bob.user_id}", user=alice)
    await hs.ok("POST", f"rooms/{room}/invite", {"user_id": alice.user_id}, user=bob)


# --- invites racing a block: decided under the append lock -------------------------


def _invite(room: str, inviter: User, invitee: User) -> Draft:
    return Draft(room, inviter.user_id, types.MEMBER, {"membership": "invite"}, invitee.user_id)


def _block_fact(blocker: User, blocked: User, in_force: bool) -> Draft:
    content: dict[str, Any] = {"blocked": True, "ts": int(time.time() * 1000)}
    return Draft(
        blocker.user_id,
        blocker.user_id,
        types.FRIEND_BLOCK,
        content if in_force else {"blocked": False},
        blocked.user_id,
    )


async def test_an_invite_checked_before_the_block_landed_is_still_refused(
    hs: MatrixClient,
) -> None:
    # The invite reaches the append lock after the block committed, as one
    # sent a moment before the block would if it was checked only beforehand.
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(bob)
    await block(hs, alice, bob)
    try:
        await hs.app[APPENDER].append(_invite(room, bob, alice))
    except MatrixError as refused:
        assert (refused.status, refused.errcode) == (403, "M_FORBIDDEN")
        assert "block" not in refused.error.lower()
    else:
        raise AssertionError("the invite of the blocker landed")
    assert (await hs.sync(alice))["rooms"]["invite"] == {}


async def test_an_invite_in_the_same_batch_as_the_block_is_refused(hs: MatrixClient) -> None:
    alice, bob, carol = await hs.register(), await hs.register(), await hs.register()
    room = await hs.create_room(bob)
    appender = hs.app[APPENDER]
    # Queued together, so usually one batch: the invite must see the block before it.
    blocked, invited, other = await asyncio.gather(
        appender.append(_block_fact(alice, bob, True)),
        appender.append(_invite(room, bob, alice)),
        appender.append(_invite(room, bob, carol)),
        return_exceptions=True,
    )
    assert isinstance(blocked, Event)
    assert isinstance(invited, MatrixError) and invited.status == 403, invited
    assert isinstance(other, Event)  # an invite of someone else is not held up
    assert (await hs.sync(alice))["rooms"]["invite"] == {}
    assert room in (await hs.sync(carol))["rooms"]["invite"]


async def test_an_invite_in_the_same_group_as_the_unblock_lands(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(bob)
    await block(hs, alice, bob)
    appender = hs.app[APPENDER]
    _, invited = await appender.append_group(
        [_block_fact(alice, bob, False), _invite(room, bob, alice)]
    )
    assert invited.content["membership"] == "invite"
    # (The bare unblock fact leaves bob in alice's ignore list, so her sync
    # would still hide the invite; the room's state has it.)
    path = f"rooms/{room}/state/m.room.member/{alice.user_id}"
    assert (await hs.ok("GET", path, user=bob))["membership"] == "invite"


async def test_a_request_accepted_after_unblocking_makes_friends(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    await block(hs, alice, bob)
    await hs.ok("DELETE", f"{V1}/blocks/{bob.user_id}", user=alice)
    await request_friend(hs, bob, alice.user_id)
    assert (await accept(hs, alice, bob)).status == 200


# --- a block hides the blocked user in shared rooms (via m.ignored_user_list) ------


async def test_the_blocked_users_messages_are_hidden_from_the_blocker(hs: MatrixClient) -> None:
    alice, bob, carol = await hs.register(), await hs.register(), await hs.register()
    room = await hs.create_room(carol, preset="public_chat")
    await hs.join(alice, room)
    await hs.join(bob, room)
    await block(hs, alice, bob)
    since = (await hs.sync(alice))["next_batch"]
    hidden = await hs.send(bob, room, {"msgtype": "m.text", "body": "can you hear me"})
    shown = await hs.send(carol, room, {"msgtype": "m.text", "body": "hello all"})
    timeline = (await hs.sync(alice, since))["rooms"]["join"][room]["timeline"]["events"]
    ids = [e["event_id"] for e in timeline]
    assert shown in ids and hidden not in ids
    history = await hs.ok("GET", f"rooms/{room}/messages?dir=b&limit=50", user=alice)
    ids = [e["event_id"] for e in history["chunk"]]
    assert shown in ids and hidden not in ids
    # Everyone else still sees it.
    carols = await hs.ok("GET", f"rooms/{room}/messages?dir=b&limit=50", user=carol)
    assert hidden in [e["event_id"] for e in carols["chunk"]]
