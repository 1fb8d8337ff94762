"""GET /sync: initial and incremental sync, long-polls, and delivery under concurrency."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import quote

import pytest

from tests.matrix import MatrixClient, User


def _bodies(room: dict[str, Any]) -> list[str]:
    return [
        e["content"].get("body", "")
        for e in room["timeline"]["events"]
        if e["type"] == "m.room.message"
    ]


async def test_initial_sync_shows_joined_rooms_with_state_and_recent_timeline(
    hs: MatrixClient,
) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice, name="Initial", preset="public_chat")
    for n in range(15):
        await hs.send(alice, room, {"msgtype": "m.text", "body": f"m{n}"})
    body = await hs.sync(alice)
    joined = body["rooms"]["join"][room]
    assert _bodies(joined) == [f"m{n}" for n in range(5, 15)]
    assert joined["timeline"]["limited"] is True
    assert joined["timeline"]["prev_batch"]
    state_types = {e["type"] for e in joined["state"]["events"]}
    assert {"m.room.create", "m.room.member", "m.room.name"} <= state_types
    assert joined["summary"]["m.joined_member_count"] == 1
    assert "room_id" not in joined["timeline"]["events"][0]
    assert body["next_batch"].startswith("s")


@pytest.mark.window_sources
async def test_incremental_sync_returns_only_new_events(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "old"})
    first = await hs.sync(alice)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "new"})
    second = await hs.sync(alice, first["next_batch"])
    assert _bodies(second["rooms"]["join"][room]) == ["new"]
    third = await hs.sync(alice, second["next_batch"])
    assert room not in third["rooms"]["join"]


@pytest.mark.window_sources
async def test_long_poll_returns_as_soon_as_a_message_arrives(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    since = (await hs.sync(bob))["next_batch"]
    started = time.monotonic()
    poll = asyncio.create_task(hs.sync(bob, since, wait_ms=10_000))
    await asyncio.sleep(0.2)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "wake up"})
    body = await poll
    assert time.monotonic() - started < 3
    assert _bodies(body["rooms"]["join"][room]) == ["wake up"]


@pytest.mark.window_sources
async def test_long_poll_with_nothing_new_waits_out_its_timeout(hs: MatrixClient) -> None:
    alice = await hs.register()
    await hs.create_room(alice)
    since = (await hs.sync(alice))["next_batch"]
    started = time.monotonic()
    body = await hs.sync(alice, since, wait_ms=500)
    assert time.monotonic() - started >= 0.45
    assert body["rooms"]["join"] == {}
    assert body["next_batch"] == since


async def test_invite_appears_with_stripped_state_and_join_moves_room_to_join(
    hs: MatrixClient,
) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, name="Secret")
    since = (await hs.sync(bob))["next_batch"]
    await hs.ok("POST", f"rooms/{room}/invite", {"user_id": bob.user_id}, user=alice)
    body = await hs.sync(bob, since, wait_ms=5_000)
    invite = body["rooms"]["invite"][room]["invite_state"]["events"]
    assert {
        "type": "m.room.name",
        "state_key": "",
        "content": {"name": "Secret"},
        "sender": alice.user_id,
    } in invite
    assert any(e["type"] == "m.room.member" and e["state_key"] == bob.user_id for e in invite)
    await hs.join(bob, room)
    after = await hs.sync(bob, body["next_batch"])
    joined = after["rooms"]["join"][room]
    # The room's name reaches the new member, in state or in the timeline.
    seen = joined["state"]["events"] + joined["timeline"]["events"]
    assert any(e["type"] == "m.room.name" for e in seen)


@pytest.mark.window_sources
async def test_member_who_left_sees_the_room_up_to_their_leave_and_nothing_after(
    hs: MatrixClient,
) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    since = (await hs.sync(bob))["next_batch"]
    await hs.send(alice, room, {"msgtype": "m.text", "body": "before"})
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=bob)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "after"})
    body = await hs.sync(bob, since)
    left = body["rooms"]["leave"][room]
    assert _bodies(left) == ["before"]
    assert left["timeline"]["events"][-1]["type"] == "m.room.member"
    assert room not in body["rooms"]["join"]
    later = await hs.sync(bob, body["next_batch"])
    assert room not in later["rooms"]["leave"] and room not in later["rooms"]["join"]


async def test_redacted_event_is_served_redacted_in_sync(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    event_id = await hs.send(alice, room, {"msgtype": "m.text", "body": "oops"})
    await hs.ok("PUT", f"rooms/{room}/redact/{event_id}/r", {}, user=alice)
    body = await hs.sync(alice)
    served = next(
        e for e in body["rooms"]["join"][room]["timeline"]["events"] if e["event_id"] == event_id
    )
    assert served["content"] == {}
    assert served["unsigned"]["redacted_because"]["type"] == "m.room.redaction"


async def test_sender_sees_its_transaction_id_in_sync(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "mine"}, txn_id="my-txn")
    body = await hs.sync(alice)
    mine = body["rooms"]["join"][room]["timeline"]["events"][-1]
    assert mine["unsigned"]["transaction_id"] == "my-txn"


async def test_bad_since_token_is_invalid_param(hs: MatrixClient) -> None:
    alice = await hs.register()
    reply = await hs.request("GET", "sync?since=garbage", user=alice)
    assert reply.status == 400
    assert reply.errcode == "M_INVALID_PARAM"


@pytest.mark.window_sources
async def test_twenty_senders_reach_twenty_long_polling_receivers_exactly_once_in_order(
    hs: MatrixClient,
) -> None:
    owner = await hs.register()
    room = await hs.create_room(owner, preset="public_chat")
    senders = [await hs.register() for _ in range(20)]
    receivers = [await hs.register() for _ in range(20)]
    for user in senders + receivers:
        await hs.join(user, room)
    per_sender = 10
    expected = len(senders) * per_sender

    # A timeline limit above what can arrive between two polls: never `limited`.
    big = quote(json.dumps({"room": {"timeline": {"limit": 500}}}))

    async def receive(user: User, since: str) -> list[tuple[str, str]]:
        got: list[tuple[str, str]] = []
        while len(got) < expected:
            body = await hs.sync(user, since, wait_ms=10_000, filter=big)
            since = body["next_batch"]
            room_body = body["rooms"]["join"].get(room)
            if room_body is None:
                continue
            assert room_body["timeline"]["limited"] is False, "a long-poller lost events"
            got += [
                (e["event_id"], e["content"]["body"])
                for e in room_body["timeline"]["events"]
                if e["type"] == "m.room.message"
            ]
        return got

    async def send(index: int, user: User) -> list[str]:
        return [
            await hs.send(user, room, {"msgtype": "m.text", "body": f"{index}:{n}"})
            for n in range(per_sender)
        ]

    # Every receiver holds its starting token before anyone sends (an initial sync
    # finishing after a send would start past it, and wait forever for it).
    starts = await asyncio.gather(*(hs.sync(user) for user in receivers))
    receiving = [
        asyncio.create_task(receive(user, start["next_batch"]))
        for user, start in zip(receivers, starts, strict=True)
    ]
    await asyncio.sleep(0.3)  # most polls are held when the sends begin
    sent = await asyncio.gather(*(send(i, s) for i, s in enumerate(senders)))
    results = await asyncio.wait_for(asyncio.gather(*receiving), timeout=60)
    all_sent = {event_id for ids in sent for event_id in ids}
    orders = []
    for got in results:
        ids = [event_id for event_id, _ in got]
        assert len(ids) == len(set(ids)) == expected, "duplicate or missing events"
        assert set(ids) == all_sent
        for index in range(len(senders)):
            mine = [body for _, body in got if body.startswith(f"{index}:")]
            assert mine == [f"{index}:{n}" for n in range(per_sender)]
        orders.append(ids)
    # Every receiver saw the one stream order.
    assert all(order == orders[0] for order in orders)


def _filter(value: dict[str, Any]) -> str:
    return quote(json.dumps(value))


async def test_sync_filter_limits_timeline_types_and_event_fields(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "text"})
    await hs.send(alice, room, {"m.relates_to": {}}, event_type="m.reaction")
    sync_filter = {
        "event_fields": ["type", "content.body"],
        "room": {"timeline": {"types": ["m.room.message"], "limit": 5}},
    }
    body = await hs.sync(alice, filter=_filter(sync_filter))
    events = body["rooms"]["join"][room]["timeline"]["events"]
    assert events == [{"type": "m.room.message", "content": {"body": "text"}}]


async def test_uploaded_filter_id_works_as_sync_filter(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    for n in range(5):
        await hs.send(alice, room, {"msgtype": "m.text", "body": str(n)})
    created = await hs.ok(
        "POST", f"user/{alice.user_id}/filter", {"room": {"timeline": {"limit": 2}}}, user=alice
    )
    body = await hs.sync(alice, filter=created["filter_id"])
    assert _bodies(body["rooms"]["join"][room]) == ["3", "4"]


async def test_lazy_loading_sends_only_members_who_speak_in_the_timeline(
    hs: MatrixClient,
) -> None:
    alice, bob, carol = await hs.register(), await hs.register(), await hs.register()
    # Named: a room without a name has heroes, whose members lazy loading sends too.
    room = await hs.create_room(alice, preset="public_chat", name="Named")
    await hs.join(bob, room)
    await hs.join(carol, room)
    for n in range(12):
        await hs.send(bob, room, {"msgtype": "m.text", "body": str(n)})
    lazy = {"room": {"state": {"lazy_load_members": True}}}
    body = await hs.sync(alice, filter=_filter(lazy))
    members = {
        e["state_key"]
        for e in body["rooms"]["join"][room]["state"]["events"]
        if e["type"] == "m.room.member"
    }
    assert bob.user_id in members
    assert carol.user_id not in members


async def test_new_joiner_does_not_see_history_from_before_joining_a_joined_only_room(
    hs: MatrixClient,
) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(
        alice,
        preset="public_chat",
        initial_state=[
            {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}
        ],
    )
    await hs.send(alice, room, {"msgtype": "m.text", "body": "before bob"})
    await hs.join(bob, room)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "after bob"})
    body = await hs.sync(bob)
    assert _bodies(body["rooms"]["join"][room]) == ["after bob"]


@pytest.mark.window_sources
async def test_receipts_and_typing_reach_other_members_in_ephemeral(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    event_id = await hs.send(alice, room)
    since = (await hs.sync(bob))["next_batch"]
    await hs.ok("POST", f"rooms/{room}/receipt/m.read/{event_id}", {}, user=alice)
    await hs.ok(
        "PUT", f"rooms/{room}/typing/{alice.user_id}", {"typing": True, "timeout": 5000}, user=alice
    )
    body = await hs.sync(bob, since, wait_ms=2_000)
    ephemeral = body["rooms"]["join"][room]["ephemeral"]["events"]
    by_type = {e["type"]: e["content"] for e in ephemeral}
    assert alice.user_id in by_type["m.receipt"][event_id]["m.read"]
    assert by_type["m.typing"]["user_ids"] == [alice.user_id]


async def test_include_leave_shows_left_rooms_in_initial_sync(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=bob)
    plain = await hs.sync(bob)
    assert room not in plain["rooms"]["leave"]
    with_leave = await hs.sync(bob, filter=_filter({"room": {"include_leave": True}}))
    assert room in with_leave["rooms"]["leave"]


@pytest.mark.window_sources
async def test_incremental_sync_serves_a_message_redacted_in_the_same_window(
    hs: MatrixClient,
) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    since = (await hs.sync(bob))["next_batch"]
    alice_since = (await hs.sync(alice))["next_batch"]
    event_id = await hs.send(alice, room, {"msgtype": "m.text", "body": "gone"}, txn_id="t-1")
    await hs.ok("PUT", f"rooms/{room}/redact/{event_id}/r-1", {}, user=alice)
    body = await hs.sync(bob, since)
    events = body["rooms"]["join"][room]["timeline"]["events"]
    served = next(e for e in events if e["event_id"] == event_id)
    assert served["content"] == {}
    assert served["unsigned"]["redacted_because"]["content"]["redacts"] == event_id
    assert "transaction_id" not in served["unsigned"]
    own = await hs.sync(alice, alice_since)
    mine = next(
        e for e in own["rooms"]["join"][room]["timeline"]["events"] if e["event_id"] == event_id
    )
    assert mine["unsigned"]["transaction_id"] == "t-1"


@pytest.mark.window_sources
async def test_the_room_summary_follows_members_joining_and_leaving(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    body = await hs.sync(bob)

    def counts(summary: dict[str, Any]) -> tuple[int, int, list[str]]:
        return (
            summary["m.joined_member_count"],
            summary["m.invited_member_count"],
            summary["m.heroes"],
        )

    assert counts(body["rooms"]["join"][room]["summary"]) == (2, 0, [alice.user_id])
    carol = await hs.register()
    await hs.join(carol, room)
    body = await hs.sync(bob, body["next_batch"])
    # Heroes in the order of their memberships (the spec's "stream ordering").
    heroes = [alice.user_id, carol.user_id]
    assert counts(body["rooms"]["join"][room]["summary"]) == (3, 0, heroes)
    dave = await hs.register()
    await hs.ok("POST", f"rooms/{room}/invite", {"user_id": dave.user_id}, user=alice)
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=carol)
    body = await hs.sync(bob, body["next_batch"])
    assert counts(body["rooms"]["join"][room]["summary"]) == (2, 1, [alice.user_id, dave.user_id])
    # A message alone changes no member: the summary is left out, as the spec allows.
    await hs.send(alice, room, {"msgtype": "m.text", "body": "hi"})
    body = await hs.sync(bob, body["next_batch"])
    assert "summary" not in body["rooms"]["join"][room]


@pytest.mark.window_sources
async def test_a_room_filter_leaves_out_typing_in_the_rooms_it_excludes(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    shown = await hs.create_room(alice, preset="public_chat")
    hidden = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, shown)
    await hs.join(bob, hidden)
    only_shown = _filter({"room": {"rooms": [shown]}})
    since = (await hs.sync(bob, filter=only_shown))["next_batch"]
    await hs.ok(
        "PUT",
        f"rooms/{hidden}/typing/{alice.user_id}",
        {"typing": True, "timeout": 5000},
        user=alice,
    )
    await hs.send(alice, shown, {"msgtype": "m.text", "body": "here"})
    body = await hs.sync(bob, since, filter=only_shown)
    assert _bodies(body["rooms"]["join"][shown]) == ["here"]
    assert hidden not in body["rooms"]["join"]


@pytest.mark.window_sources
async def test_the_room_summary_follows_a_join_the_timeline_filter_hides(
    hs: MatrixClient,
) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    no_members = _filter({"room": {"timeline": {"not_types": ["m.room.member"]}}})
    since = (await hs.sync(alice, filter=no_members))["next_batch"]
    await hs.join(bob, room)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "welcome"})
    joined = (await hs.sync(alice, since, filter=no_members))["rooms"]["join"][room]
    assert _bodies(joined) == ["welcome"]
    assert joined["summary"]["m.joined_member_count"] == 2
