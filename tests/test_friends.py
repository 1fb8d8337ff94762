"""Friends (/_linkchat/v1/friends): requests, accepting into one direct chat, and
what both sides see, with every rule enforced by the server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import jsonschema
import pytest
from pydantic import ValidationError

from homeserver.events.canonical import decode
from homeserver.friends.content import (
    BlockContent,
    FriendAccepted,
    FriendEnded,
    FriendRequested,
)
from tests.audit_log import assert_replay_identical
from tests.conftest import AppFactory
from tests.matrix import MatrixClient, Reply, User

V1 = "/_linkchat/v1"
SPEC_EVENTS = Path(__file__).resolve().parent.parent / "spec" / "events"


# --- what a client does ------------------------------------------------------


async def request_friend(
    hs: MatrixClient, sender: User, target: str, message: str | None = None
) -> Reply:
    body: dict[str, Any] = {"user_id": target}
    if message is not None:
        body["message"] = message
    return await hs.request("POST", V1 + "/friends/requests", body, user=sender)


async def accept(hs: MatrixClient, user: User, requester: User) -> Reply:
    return await hs.request(
        "POST", f"{V1}/friends/requests/{requester.user_id}/accept", {}, user=user
    )


async def befriend(hs: MatrixClient, a: User, b: User) -> dict[str, Any]:
    """a asks, b accepts; the accept's answer."""
    assert (await request_friend(hs, a, b.user_id)).status == 200
    reply = await accept(hs, b, a)
    assert reply.status == 200, reply
    return dict(reply.body)


async def friends_of(hs: MatrixClient, user: User) -> dict[str, dict[str, Any]]:
    body = await hs.ok("GET", V1 + "/friends", user=user)
    return {f["user_id"]: f for f in body["friends"]}


async def requests_of(hs: MatrixClient, user: User) -> dict[str, dict[str, dict[str, Any]]]:
    body = await hs.ok("GET", V1 + "/friends/requests", user=user)
    return {side: {r["user_id"]: r for r in body[side]} for side in ("incoming", "outgoing")}


def account_data(body: dict[str, Any], data_type: str) -> dict[str, Any] | None:
    for event in body["account_data"]["events"]:
        if event["type"] == data_type:
            return dict(event["content"])
    return None


async def current_account_data(hs: MatrixClient, user: User, data_type: str) -> dict[str, Any]:
    found = account_data(await hs.sync(user), data_type)
    assert found is not None, f"no {data_type} for {user.user_id}"
    return found


def assert_refused(reply: Reply, status: int, errcode: str) -> None:
    assert (reply.status, reply.errcode) == (status, errcode), reply
    assert isinstance(reply.body["error"], str) and reply.body["error"]


# --- requests -----------------------------------------------------------------


async def test_a_request_shows_on_both_sides_with_its_message(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    reply = await request_friend(hs, alice, bob.user_id, "it's me, from the climbing gym")
    assert reply.body == {"status": "pending"}
    incoming = (await requests_of(hs, bob))["incoming"]
    outgoing = (await requests_of(hs, alice))["outgoing"]
    assert set(incoming) == {alice.user_id} and set(outgoing) == {bob.user_id}
    assert incoming[alice.user_id]["message"] == "it's me, from the climbing gym"
    assert incoming[alice.user_id]["ts"] == outgoing[bob.user_id]["ts"] > 0
    assert (await requests_of(hs, alice))["incoming"] == {}
    assert await friends_of(hs, alice) == {} and await friends_of(hs, bob) == {}


async def test_a_request_without_a_message_has_a_null_message(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    await request_friend(hs, alice, bob.user_id)
    assert (await requests_of(hs, bob))["incoming"][alice.user_id]["message"] is None


async def test_a_request_to_oneself_is_refused(hs: MatrixClient) -> None:
    alice = await hs.register()
    assert_refused(await request_friend(hs, alice, alice.user_id), 400, "COM.LINKCHAT_SELF_REQUEST")


async def test_a_request_to_an_unknown_user_is_not_found(hs: MatrixClient) -> None:
    alice = await hs.register()
    reply = await request_friend(hs, alice, "@nobody_here:localhost")
    assert_refused(reply, 404, "M_NOT_FOUND")


async def test_a_request_to_something_not_a_user_id_is_invalid(hs: MatrixClient) -> None:
    alice = await hs.register()
    assert_refused(await request_friend(hs, alice, "bob"), 400, "M_INVALID_PARAM")
    reply = await hs.request("POST", V1 + "/friends/requests", {"message": "hi"}, user=alice)
    assert_refused(reply, 400, "M_BAD_JSON")
    reply = await hs.request("POST", V1 + "/friends/requests", raw=b"{not json", user=alice)
    assert_refused(reply, 400, "M_NOT_JSON")


async def test_a_message_longer_than_300_characters_is_refused(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    assert_refused(await request_friend(hs, alice, bob.user_id, "x" * 301), 400, "M_BAD_JSON")
    assert (await request_friend(hs, alice, bob.user_id, "é" * 300)).status == 200


async def test_a_second_request_to_the_same_user_is_a_duplicate(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    await request_friend(hs, alice, bob.user_id)
    reply = await request_friend(hs, alice, bob.user_id, "again")
    assert_refused(reply, 400, "COM.LINKCHAT_DUPLICATE_REQUEST")


async def test_a_request_to_a_friend_is_refused(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    await befriend(hs, alice, bob)
    for sender, target in ((alice, bob), (bob, alice)):
        reply = await request_friend(hs, sender, target.user_id)
        assert_refused(reply, 400, "COM.LINKCHAT_ALREADY_FRIENDS")


async def test_friend_requests_need_an_access_token(hs: MatrixClient) -> None:
    reply = await hs.request("GET", V1 + "/friends/requests")
    assert_refused(reply, 401, "M_MISSING_TOKEN")


async def test_asking_someone_who_asked_first_makes_you_friends(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    await request_friend(hs, bob, alice.user_id)
    reply = await request_friend(hs, alice, bob.user_id)
    assert reply.status == 200 and reply.body["status"] == "friends"
    assert reply.body["user_id"] == bob.user_id and reply.body["room_id"].startswith("!")
    assert set(await friends_of(hs, alice)) == {bob.user_id}
    assert set(await friends_of(hs, bob)) == {alice.user_id}
    assert await requests_of(hs, alice) == {"incoming": {}, "outgoing": {}}


async def test_declining_ends_the_request_for_both_and_allows_asking_again(
    hs: MatrixClient,
) -> None:
    alice, bob = await hs.register(), await hs.register()
    await request_friend(hs, alice, bob.user_id)
    await hs.ok("POST", f"{V1}/friends/requests/{alice.user_id}/decline", {}, user=bob)
    assert await requests_of(hs, alice) == {"incoming": {}, "outgoing": {}}
    assert await requests_of(hs, bob) == {"incoming": {}, "outgoing": {}}
    assert (await request_friend(hs, alice, bob.user_id)).status == 200


async def test_one_cannot_decline_or_accept_ones_own_request(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    await request_friend(hs, alice, bob.user_id)
    assert_refused(await accept(hs, alice, bob), 404, "COM.LINKCHAT_NO_REQUEST")
    reply = await hs.request("POST", f"{V1}/friends/requests/{bob.user_id}/decline", {}, user=alice)
    assert_refused(reply, 404, "COM.LINKCHAT_NO_REQUEST")
    assert set((await requests_of(hs, bob))["incoming"]) == {alice.user_id}


async def test_cancelling_withdraws_ones_own_request_for_both(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    await request_friend(hs, alice, bob.user_id)
    reply = await hs.request("DELETE", f"{V1}/friends/requests/{alice.user_id}", user=bob)
    assert_refused(reply, 404, "COM.LINKCHAT_NO_REQUEST")  # not bob's to cancel
    await hs.ok("DELETE", f"{V1}/friends/requests/{bob.user_id}", user=alice)
    assert await requests_of(hs, bob) == {"incoming": {}, "outgoing": {}}
    assert await requests_of(hs, alice) == {"incoming": {}, "outgoing": {}}
    assert_refused(await accept(hs, bob, alice), 404, "COM.LINKCHAT_NO_REQUEST")


async def test_answering_a_request_that_does_not_exist_is_not_found(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    assert_refused(await accept(hs, alice, bob), 404, "COM.LINKCHAT_NO_REQUEST")
    for method, path in (
        ("POST", f"{V1}/friends/requests/{bob.user_id}/decline"),
        ("DELETE", f"{V1}/friends/requests/{bob.user_id}"),
    ):
        assert_refused(
            await hs.request(method, path, {}, user=alice), 404, "COM.LINKCHAT_NO_REQUEST"
        )
    reply = await hs.request("POST", f"{V1}/friends/requests/bob/accept", {}, user=alice)
    assert_refused(reply, 400, "M_INVALID_PARAM")


# --- friends and their direct chat --------------------------------------------


async def test_accepting_makes_both_friends_with_one_direct_chat(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    await request_friend(hs, alice, bob.user_id)
    accepted = await accept(hs, bob, alice)
    assert accepted.status == 200
    room_id = accepted.body["room_id"]
    assert accepted.body["user_id"] == alice.user_id
    of_alice, of_bob = await friends_of(hs, alice), await friends_of(hs, bob)
    assert of_alice[bob.user_id] == {
        "user_id": bob.user_id,
        "since": accepted.body["since"],
        "room_id": room_id,
    }
    assert of_bob[alice.user_id]["room_id"] == room_id
    assert of_bob[alice.user_id]["since"] == accepted.body["since"]
    assert await requests_of(hs, alice) == {"incoming": {}, "outgoing": {}}
    assert await requests_of(hs, bob) == {"incoming": {}, "outgoing": {}}


async def test_the_direct_chat_is_a_synapse_style_dm(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    await request_friend(hs, alice, bob.user_id)
    room_id = (await accept(hs, bob, alice)).body["room_id"]
    # The accepter created it and joined; the requester is invited, with is_direct.
    assert await hs.ok("GET", "joined_rooms", user=bob) == {"joined_rooms": [room_id]}
    invite = await hs.ok("GET", f"rooms/{room_id}/state/m.room.member/{alice.user_id}", user=bob)
    assert invite["membership"] == "invite" and invite["is_direct"] is True
    rules = await hs.ok("GET", f"rooms/{room_id}/state/m.room.join_rules/", user=bob)
    assert rules["join_rule"] == "invite"
    levels = await hs.ok("GET", f"rooms/{room_id}/state/m.room.power_levels/", user=bob)
    assert levels["users"] == {alice.user_id: 100, bob.user_id: 100}  # trusted_private_chat
    invited = (await hs.sync(alice))["rooms"]["invite"][room_id]["invite_state"]["events"]
    own = next(
        e for e in invited if e["type"] == "m.room.member" and e["state_key"] == alice.user_id
    )
    assert own["content"]["is_direct"] is True
    await hs.join(alice, room_id)
    await hs.send(alice, room_id, {"msgtype": "m.text", "body": "hi friend"})


async def test_the_direct_chat_is_flagged_in_both_users_m_direct(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room_id = (await befriend(hs, alice, bob))["room_id"]
    assert await current_account_data(hs, alice, "m.direct") == {bob.user_id: [room_id]}
    assert await current_account_data(hs, bob, "m.direct") == {alice.user_id: [room_id]}


async def test_befriending_again_reuses_the_live_direct_chat(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room_id = (await befriend(hs, alice, bob))["room_id"]
    await hs.join(alice, room_id)
    await hs.ok("DELETE", f"{V1}/friends/{bob.user_id}", user=alice)
    assert await friends_of(hs, bob) == {}
    again = await befriend(hs, bob, alice)
    assert again["room_id"] == room_id
    assert (await friends_of(hs, bob))[alice.user_id]["room_id"] == room_id
    assert await current_account_data(hs, alice, "m.direct") == {bob.user_id: [room_id]}


async def test_a_direct_chat_someone_left_is_not_reused(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    first = (await befriend(hs, alice, bob))["room_id"]
    await hs.ok("DELETE", f"{V1}/friends/{alice.user_id}", user=bob)
    await hs.ok("POST", f"rooms/{first}/leave", {}, user=bob)  # the creator left: not live
    second = (await befriend(hs, alice, bob))["room_id"]
    assert second != first
    assert await current_account_data(hs, alice, "m.direct") == {bob.user_id: [first, second]}


async def test_a_room_with_a_third_member_is_not_reused_as_the_direct_chat(
    hs: MatrixClient,
) -> None:
    alice, bob, carol = await hs.register(), await hs.register(), await hs.register()
    first = (await befriend(hs, alice, bob))["room_id"]
    await hs.ok("POST", f"rooms/{first}/invite", {"user_id": carol.user_id}, user=bob)
    await hs.ok("DELETE", f"{V1}/friends/{bob.user_id}", user=alice)
    assert (await befriend(hs, alice, bob))["room_id"] != first


async def test_removing_a_friend_ends_it_for_both_and_keeps_the_room(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room_id = (await befriend(hs, alice, bob))["room_id"]
    await hs.ok("DELETE", f"{V1}/friends/{alice.user_id}", user=bob)
    assert await friends_of(hs, alice) == {} and await friends_of(hs, bob) == {}
    assert room_id in (await hs.ok("GET", "joined_rooms", user=bob))["joined_rooms"]
    reply = await hs.request("DELETE", f"{V1}/friends/{alice.user_id}", user=bob)
    assert_refused(reply, 404, "COM.LINKCHAT_NOT_FRIENDS")


async def test_removing_someone_who_is_only_a_requester_is_not_found(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    await request_friend(hs, alice, bob.user_id)
    reply = await hs.request("DELETE", f"{V1}/friends/{alice.user_id}", user=bob)
    assert_refused(reply, 404, "COM.LINKCHAT_NOT_FRIENDS")
    assert set((await requests_of(hs, bob))["incoming"]) == {alice.user_id}


# --- what /sync shows ---------------------------------------------------------


async def test_both_sides_see_every_change_in_their_next_sync(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    since = {u.user_id: (await hs.sync(u))["next_batch"] for u in (alice, bob)}

    async def friends_data(user: User) -> dict[str, Any] | None:
        body = await hs.sync(user, since[user.user_id])
        since[user.user_id] = body["next_batch"]
        return account_data(body, "com.linkchat.friends")

    await request_friend(hs, alice, bob.user_id, "hello")
    seen_by_alice, seen_by_bob = await friends_data(alice), await friends_data(bob)
    assert seen_by_alice is not None and seen_by_bob is not None
    ts = seen_by_alice["outgoing"][bob.user_id]["ts"]
    assert seen_by_alice == {
        "friends": {},
        "incoming": {},
        "outgoing": {bob.user_id: {"message": "hello", "ts": ts}},
    }
    assert seen_by_bob == {
        "friends": {},
        "incoming": {alice.user_id: {"message": "hello", "ts": ts}},
        "outgoing": {},
    }

    accepted = (await accept(hs, bob, alice)).body
    friendship = {"since": accepted["since"], "room_id": accepted["room_id"]}
    assert await friends_data(alice) == {
        "friends": {bob.user_id: friendship},
        "incoming": {},
        "outgoing": {},
    }
    assert await friends_data(bob) == {
        "friends": {alice.user_id: friendship},
        "incoming": {},
        "outgoing": {},
    }

    await hs.ok("DELETE", f"{V1}/friends/{bob.user_id}", user=alice)
    empty = {"friends": {}, "incoming": {}, "outgoing": {}}
    assert await friends_data(alice) == empty
    assert await friends_data(bob) == empty
    assert await friends_data(alice) is None  # nothing new since


async def test_clients_cannot_set_com_linkchat_friends_but_can_read_it(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    await request_friend(hs, alice, bob.user_id)
    path = f"user/{alice.user_id}/account_data/com.linkchat.friends"
    forged = {"friends": {bob.user_id: {"since": 1, "room_id": "!x:localhost"}}}
    assert_refused(await hs.request("PUT", path, forged, user=alice), 405, "M_BAD_JSON")
    kept = await hs.ok("GET", path, user=alice)
    assert kept["friends"] == {} and set(kept["outgoing"]) == {bob.user_id}
    # m.direct stays the client's: a client write and the server's both survive.
    await hs.ok("PUT", f"user/{bob.user_id}/account_data/m.direct", {"@x:localhost": []}, user=bob)
    room_id = (await accept(hs, bob, alice)).body["room_id"]
    direct = await hs.ok("GET", f"user/{bob.user_id}/account_data/m.direct", user=bob)
    assert direct == {"@x:localhost": [], alice.user_id: [room_id]}


async def test_a_long_poll_wakes_when_someone_sends_you_a_request(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    since = (await hs.sync(bob))["next_batch"]
    waiting = asyncio.create_task(hs.sync(bob, since, wait_ms=10_000))
    await asyncio.sleep(0.2)
    await request_friend(hs, alice, bob.user_id)
    body = await asyncio.wait_for(waiting, 5)
    data = account_data(body, "com.linkchat.friends")
    assert data is not None and set(data["incoming"]) == {alice.user_id}


# --- races decided under the append lock ---------------------------------------


async def test_crossing_requests_end_as_one_consistent_relation(hs: MatrixClient) -> None:
    for _ in range(5):
        alice, bob = await hs.register(), await hs.register()
        replies = await asyncio.gather(
            request_friend(hs, alice, bob.user_id), request_friend(hs, bob, alice.user_id)
        )
        outcomes = sorted(r.body.get("status") if r.status == 200 else r.errcode for r in replies)
        assert outcomes in (
            ["friends", "pending"],
            ["COM.LINKCHAT_DUPLICATE_REQUEST", "pending"],
        ), replies
        of_alice, of_bob = await requests_of(hs, alice), await requests_of(hs, bob)
        # Each side holds the mirror image of the other's relation.
        assert (bob.user_id in of_alice["outgoing"]) == (alice.user_id in of_bob["incoming"])
        assert (bob.user_id in of_alice["incoming"]) == (alice.user_id in of_bob["outgoing"])
        assert set(await friends_of(hs, alice)) == (
            {bob.user_id} if "friends" in outcomes else set()
        )


async def test_accepting_two_requests_at_once_keeps_both_in_m_direct(hs: MatrixClient) -> None:
    alice = await hs.register()
    others = [await hs.register() for _ in range(4)]
    for other in others:
        await request_friend(hs, other, alice.user_id)
    accepted = await asyncio.gather(*(accept(hs, alice, other) for other in others))
    assert [r.status for r in accepted] == [200] * len(others)
    rooms = {other.user_id: [r.body["room_id"]] for other, r in zip(others, accepted, strict=True)}
    assert await current_account_data(hs, alice, "m.direct") == rooms
    data = await current_account_data(hs, alice, "com.linkchat.friends")
    assert {k: v["room_id"] for k, v in data["friends"].items()} == {
        k: v[0] for k, v in rooms.items()
    }


# --- who may send requests (friends.requests_from) -----------------------------


async def test_shares_room_policy_needs_a_shared_room(start_app: AppFactory) -> None:
    hs = await start_app(friends={"requests_from": "shares_room"})
    alice, bob = await hs.register(), await hs.register()
    reply = await request_friend(hs, alice, bob.user_id)
    assert_refused(reply, 403, "M_FORBIDDEN")
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    assert (await request_friend(hs, alice, bob.user_id)).body == {"status": "pending"}


async def test_nobody_policy_turns_requests_off_but_not_friendships(
    start_app: AppFactory, run_dsn: str
) -> None:
    open_hs = await start_app()
    alice, bob, carol, dave = [await open_hs.register() for _ in range(4)]
    await befriend(open_hs, alice, bob)
    await request_friend(open_hs, carol, alice.user_id)
    closed = await start_app(dsn=run_dsn, friends={"requests_from": "nobody"})
    assert_refused(await request_friend(closed, alice, dave.user_id), 403, "M_FORBIDDEN")
    assert set(await friends_of(closed, alice)) == {bob.user_id}
    # A request already made can still be answered.
    assert (await accept(closed, alice, carol)).status == 200


# --- the log: replay and schemas ------------------------------------------------


async def test_friend_projections_equal_a_replay_of_the_log(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    hs = await start_app(dsn=fresh_dsn)
    users = [await hs.register() for _ in range(4)]
    alice, bob, carol, dave = users
    await befriend(hs, alice, bob)
    await request_friend(hs, carol, alice.user_id, "hi")
    await request_friend(hs, alice, dave.user_id)
    await request_friend(hs, dave, bob.user_id)
    await hs.ok("POST", f"{V1}/friends/requests/{dave.user_id}/decline", {}, user=bob)
    await hs.ok("PUT", f"{V1}/blocks/{carol.user_id}", {}, user=alice)
    await hs.ok("PUT", f"{V1}/blocks/{dave.user_id}", {}, user=bob)
    await hs.ok("DELETE", f"{V1}/blocks/{dave.user_id}", user=bob)
    await hs.ok("DELETE", f"{V1}/friends/{alice.user_id}", user=bob)
    await befriend(hs, bob, alice)
    await assert_projections_equal_replay(fresh_dsn)


async def assert_projections_equal_replay(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for name in ("friend_relations", "user_blocks"):
            assert await conn.fetchval(f"SELECT count(*) FROM {name}") > 0, name
    finally:
        await conn.close()
    await assert_replay_identical(dsn)


def _schema(name: str) -> dict[str, Any]:
    return dict(json.loads((SPEC_EVENTS / f"{name}.json").read_text()))


def _schema_accepts(schema: dict[str, Any], content: object) -> bool:
    try:
        jsonschema.validate(content, schema)
    except jsonschema.ValidationError:
        return False
    return True


def _model_accepts(models: tuple[type[Any], ...], content: object) -> bool:
    for model in models:
        try:
            model.model_validate(content)
        except ValidationError:
            continue
        return True
    return False


FRIEND_SHAPES: list[tuple[object, bool]] = [
    ({"relation": "outgoing", "ts": 1, "message": "hi"}, True),
    ({"relation": "incoming", "ts": 1}, True),
    ({"relation": "friends", "since": 5, "room_id": "!a:localhost"}, True),
    ({"ended": "declined"}, True),
    ({"ended": "cancelled"}, True),
    ({"ended": "removed"}, True),
    ({"relation": "outgoing"}, False),
    ({"relation": "outgoing", "ts": "1"}, False),
    ({"relation": "outgoing", "ts": 1, "message": 5}, False),
    ({"relation": "friends", "since": 5}, False),
    ({"relation": "friends", "since": 5, "room_id": "#alias:localhost"}, False),
    ({"relation": "enemies", "ts": 1}, False),
    ({"ended": "forgotten"}, False),
    ({}, False),
]
BLOCK_SHAPES: list[tuple[object, bool]] = [
    ({"blocked": True, "ts": 3}, True),
    ({"blocked": False}, True),
    ({"blocked": True}, False),
    ({"blocked": "yes", "ts": 3}, False),
    ({}, False),
]


@pytest.mark.parametrize(("content", "valid"), FRIEND_SHAPES)
def test_friend_schema_and_model_agree(content: object, valid: bool) -> None:
    models = (FriendRequested, FriendAccepted, FriendEnded)
    assert _schema_accepts(_schema("com.linkchat.friend"), content) is valid
    assert _model_accepts(models, content) is valid


@pytest.mark.parametrize(("content", "valid"), BLOCK_SHAPES)
def test_block_schema_and_model_agree(content: object, valid: bool) -> None:
    assert _schema_accepts(_schema("com.linkchat.friend.block"), content) is valid
    assert _model_accepts((BlockContent,), content) is valid


async def test_every_logged_friend_fact_matches_its_schema(hs: MatrixClient, run_dsn: str) -> None:
    alice, bob, carol = await hs.register(), await hs.register(), await hs.register()
    await befriend(hs, alice, bob)
    await request_friend(hs, carol, alice.user_id, "hello")
    await hs.ok("PUT", f"{V1}/blocks/{carol.user_id}", {}, user=alice)
    await hs.ok("DELETE", f"{V1}/blocks/{carol.user_id}", user=alice)
    schemas = {
        "com.linkchat.friend": _schema("com.linkchat.friend"),
        "com.linkchat.friend.block": _schema("com.linkchat.friend.block"),
    }
    friends_schema = _schema("com.linkchat.friends")
    conn = await asyncpg.connect(run_dsn)
    try:
        rows = await conn.fetch(
            "SELECT type, json FROM events WHERE room_id = ANY($1::text[])",
            [alice.user_id, bob.user_id, carol.user_id],
        )
    finally:
        await conn.close()
    seen = set()
    for row in rows:
        content = decode(row["json"])["content"]
        if row["type"] in schemas:
            jsonschema.validate(content, schemas[row["type"]])
            seen.add(row["type"])
        elif content.get("type") == "com.linkchat.friends":
            jsonschema.validate(content["content"], friends_schema)
            seen.add("com.linkchat.friends")
    assert seen == {*schemas, "com.linkchat.friends"}


def _endpoint_schema(name: str) -> dict[str, Any]:
    bundle = json.loads((SPEC_EVENTS.parent / "friends.schema.json").read_text())
    return {"$defs": bundle["$defs"], "$ref": f"#/$defs/{name}"}


async def test_every_endpoint_answers_as_its_schema_says(hs: MatrixClient) -> None:
    alice, bob, carol = await hs.register(), await hs.register(), await hs.register()
    bundle = json.loads((SPEC_EVENTS.parent / "friends.schema.json").read_text())

    async def check(name: str, method: str, path: str, body: Any = None, *, user: User) -> None:
        """The request (when the spec has a schema for it) and the answer match the spec."""
        request_name = name.removesuffix("_response") + "_request"
        if body is not None and request_name in bundle["$defs"]:
            jsonschema.validate(body, _endpoint_schema(request_name))
        reply = await hs.request(method, V1 + path, body, user=user)
        assert (reply.status == 200) is (name != "error"), reply
        jsonschema.validate(reply.body, _endpoint_schema(name))

    await check(
        "send_request_response",
        "POST",
        "/friends/requests",
        {"user_id": bob.user_id, "message": "hi"},
        user=alice,
    )
    await check(
        "send_request_response", "POST", "/friends/requests", {"user_id": carol.user_id}, user=alice
    )
    await check("requests_response", "GET", "/friends/requests", user=alice)
    await check("requests_response", "GET", "/friends/requests", user=bob)
    await check(
        "accept_response", "POST", f"/friends/requests/{alice.user_id}/accept", {}, user=bob
    )
    await check(
        "decline_response", "POST", f"/friends/requests/{alice.user_id}/decline", {}, user=carol
    )
    await check(
        "send_request_response", "POST", "/friends/requests", {"user_id": alice.user_id}, user=carol
    )
    await check(
        "send_request_response", "POST", "/friends/requests", {"user_id": carol.user_id}, user=alice
    )
    await check("friends_response", "GET", "/friends", user=alice)
    await check("remove_friend_response", "DELETE", f"/friends/{alice.user_id}", user=bob)
    await request_friend(hs, bob, alice.user_id)
    await check("cancel_response", "DELETE", f"/friends/requests/{alice.user_id}", user=bob)
    await check("block_response", "PUT", f"/blocks/{bob.user_id}", {}, user=alice)
    await check("blocks_response", "GET", "/blocks", user=alice)
    await check("block_response", "DELETE", f"/blocks/{bob.user_id}", user=alice)
    await check("error", "DELETE", f"/blocks/{bob.user_id}", user=alice)
