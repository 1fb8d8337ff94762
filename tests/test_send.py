"""Sending, reading and redacting events; relations; ordering and the hash chain."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from typing import Any

import asyncpg
import pytest

from homeserver.api.app_keys import POOL
from homeserver.events.canonical import decode
from tests.matrix import MatrixClient, User


def _pool(hs: MatrixClient) -> asyncpg.Pool:
    return hs.app[POOL]


async def _room_events(hs: MatrixClient, room: str) -> list[asyncpg.Record]:
    async with _pool(hs).acquire() as conn:
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT event_id, stream_position, type, json FROM events"
            " WHERE room_id = $1 ORDER BY stream_position",
            room,
        )
        return rows


async def _room_with_member(hs: MatrixClient, **create: Any) -> tuple[User, User, str]:
    admin, member = await hs.register(), await hs.register()
    room = await hs.create_room(admin, preset="public_chat", **create)
    await hs.join(member, room)
    return admin, member, room


async def _get(hs: MatrixClient, user: User, room: str, event_id: str) -> dict[str, Any]:
    event: dict[str, Any] = await hs.ok("GET", f"rooms/{room}/event/{event_id}", user=user)
    return event


# Sending


async def test_sent_message_gets_an_event_id_and_can_be_read_back(hs: MatrixClient) -> None:
    admin, member, room = await _room_with_member(hs)
    content = {"msgtype": "m.text", "body": "hi there"}
    event_id = await hs.send(member, room, content)
    assert event_id.startswith("$")
    event = await _get(hs, admin, room, event_id)
    assert event["content"] == content
    assert event["sender"] == member.user_id
    assert event["type"] == "m.room.message"
    assert event["room_id"] == room
    assert event["event_id"] == event_id
    assert "state_key" not in event


async def test_retried_send_with_the_same_txn_id_makes_one_event(hs: MatrixClient) -> None:
    admin, _, room = await _room_with_member(hs)
    before = len(await _room_events(hs, room))
    first = await hs.send(admin, room, {"body": "once"}, txn_id="retry-1")
    second = await hs.send(admin, room, {"body": "once"}, txn_id="retry-1")
    assert first == second
    events = await _room_events(hs, room)
    assert len(events) == before + 1
    assert events[-1]["event_id"] == first


async def test_concurrent_retries_of_one_send_make_one_event(hs: MatrixClient) -> None:
    admin, _, room = await _room_with_member(hs)
    before = len(await _room_events(hs, room))
    sent = await asyncio.gather(
        *(hs.send(admin, room, {"body": "double tap"}, txn_id="tap-1") for _ in range(5))
    )
    assert len(set(sent)) == 1
    assert len(await _room_events(hs, room)) == before + 1


async def test_same_txn_id_from_another_device_makes_a_new_event(hs: MatrixClient) -> None:
    admin, _, room = await _room_with_member(hs)
    laptop = await hs.login(admin)
    first = await hs.send(admin, room, {"body": "from phone"}, txn_id="shared-txn")
    second = await hs.send(laptop, room, {"body": "from laptop"}, txn_id="shared-txn")
    assert first != second
    assert (await _get(hs, admin, room, second))["content"] == {"body": "from laptop"}


async def test_same_txn_id_from_another_user_makes_a_new_event(hs: MatrixClient) -> None:
    admin, member, room = await _room_with_member(hs)
    first = await hs.send(admin, room, {"body": "a"}, txn_id="common")
    second = await hs.send(member, room, {"body": "b"}, txn_id="common")
    assert first != second


async def test_sender_sees_their_transaction_id_and_others_do_not(hs: MatrixClient) -> None:
    admin, member, room = await _room_with_member(hs)
    event_id = await hs.send(member, room, txn_id="mine-42")
    own = await _get(hs, member, room, event_id)
    assert own["unsigned"]["transaction_id"] == "mine-42"
    other = await _get(hs, admin, room, event_id)
    assert "transaction_id" not in other["unsigned"]


async def test_transaction_id_is_shown_only_to_the_sending_device(hs: MatrixClient) -> None:
    admin, _, room = await _room_with_member(hs)
    laptop = await hs.login(admin)
    event_id = await hs.send(admin, room, txn_id="phone-7")
    from_laptop = await _get(hs, laptop, room, event_id)
    assert "transaction_id" not in from_laptop["unsigned"]


async def test_non_member_cannot_send(hs: MatrixClient) -> None:
    _, _, room = await _room_with_member(hs)
    mallory = await hs.register()
    before = len(await _room_events(hs, room))
    reply = await hs.request(
        "PUT", f"rooms/{room}/send/m.room.message/t1", {"body": "let me in"}, user=mallory
    )
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"
    assert len(await _room_events(hs, room)) == before


async def test_sending_to_an_unknown_room_is_refused(hs: MatrixClient) -> None:
    alice = await hs.register()
    reply = await hs.request(
        "PUT", "rooms/!nowhere:localhost/send/m.room.message/t1", {"body": "?"}, user=alice
    )
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"


async def test_unknown_event_is_not_found(hs: MatrixClient) -> None:
    admin, _, room = await _room_with_member(hs)
    reply = await hs.request("GET", f"rooms/{room}/event/$nosuchevent", user=admin)
    assert reply.status == 404
    assert reply.errcode == "M_NOT_FOUND"


async def test_event_of_another_room_is_not_found_through_this_room(hs: MatrixClient) -> None:
    admin, _, room = await _room_with_member(hs)
    other = await hs.create_room(admin, preset="public_chat")
    event_id = await hs.send(admin, other, {"body": "elsewhere"})
    reply = await hs.request("GET", f"rooms/{room}/event/{event_id}", user=admin)
    assert reply.status == 404
    assert reply.errcode == "M_NOT_FOUND"


async def test_stranger_cannot_read_an_event(hs: MatrixClient) -> None:
    admin, _, room = await _room_with_member(hs)
    mallory = await hs.register()
    event_id = await hs.send(admin, room, {"body": "members only"})
    reply = await hs.request("GET", f"rooms/{room}/event/{event_id}", user=mallory)
    # The spec answers "not found, or no permission" alike: nothing about the room leaks.
    assert reply.status == 404
    assert reply.errcode == "M_NOT_FOUND"
    assert "members only" not in str(reply.body)


async def test_user_who_left_can_read_events_from_before_but_not_after(hs: MatrixClient) -> None:
    admin, member, room = await _room_with_member(hs)
    before = await hs.send(admin, room, {"body": "before"})
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=member)
    after = await hs.send(admin, room, {"body": "after"})
    assert (await _get(hs, member, room, before))["content"] == {"body": "before"}
    reply = await hs.request("GET", f"rooms/{room}/event/{after}", user=member)
    assert reply.status == 404


# Redaction


async def _redact(
    hs: MatrixClient, user: User, room: str, event_id: str, reason: str | None = None
) -> Any:
    body = {"reason": reason} if reason is not None else {}
    return await hs.request(
        "PUT", f"rooms/{room}/redact/{event_id}/{secrets.token_hex(6)}", body, user=user
    )


async def test_redacted_message_is_served_without_its_content(hs: MatrixClient) -> None:
    admin, member, room = await _room_with_member(hs)
    event_id = await hs.send(member, room, {"msgtype": "m.text", "body": "oops"})
    reply = await _redact(hs, member, room, event_id, reason="typo")
    assert reply.status == 200
    redaction_id = reply.body["event_id"]
    assert redaction_id.startswith("$")
    for viewer in (admin, member):
        event = await _get(hs, viewer, room, event_id)
        assert event["content"] == {}
        because = event["unsigned"]["redacted_because"]
        assert because["event_id"] == redaction_id
        assert because["sender"] == member.user_id
        assert because["content"]["redacts"] == event_id
        assert because["content"]["reason"] == "typo"


async def test_redaction_event_can_be_read_back(hs: MatrixClient) -> None:
    admin, member, room = await _room_with_member(hs)
    event_id = await hs.send(member, room, {"body": "x"})
    redaction_id = (await _redact(hs, member, room, event_id)).body["event_id"]
    redaction = await _get(hs, admin, room, redaction_id)
    assert redaction["type"] == "m.room.redaction"
    assert redaction["content"]["redacts"] == event_id
    assert redaction["redacts"] == event_id


async def test_redacted_membership_keeps_the_membership(hs: MatrixClient) -> None:
    admin, member, room = await _room_with_member(hs)
    await hs.ok("POST", f"rooms/{room}/join", {"reason": "an offensive reason"}, user=member)
    join = await hs.ok(
        "GET", f"rooms/{room}/state/m.room.member/{member.user_id}?format=event", user=admin
    )
    assert (await _redact(hs, admin, room, join["event_id"])).status == 200
    event = await _get(hs, admin, room, join["event_id"])
    assert event["content"] == {"membership": "join"}
    assert "redacted_because" in event["unsigned"]


async def test_member_without_power_cannot_redact_someone_elses_event(hs: MatrixClient) -> None:
    admin, member, room = await _room_with_member(hs)
    event_id = await hs.send(admin, room, {"body": "keep me"})
    reply = await _redact(hs, member, room, event_id)
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"
    assert (await _get(hs, admin, room, event_id))["content"] == {"body": "keep me"}


async def test_admin_can_redact_someone_elses_event(hs: MatrixClient) -> None:
    admin, member, room = await _room_with_member(hs)
    event_id = await hs.send(member, room, {"body": "spam"})
    assert (await _redact(hs, admin, room, event_id, reason="spam")).status == 200
    assert (await _get(hs, member, room, event_id))["content"] == {}


async def test_member_can_redact_their_own_event(hs: MatrixClient) -> None:
    _, member, room = await _room_with_member(hs)
    event_id = await hs.send(member, room, {"body": "regret"})
    assert (await _redact(hs, member, room, event_id)).status == 200
    assert (await _get(hs, member, room, event_id))["content"] == {}


async def test_redacting_an_unknown_event_is_not_found(hs: MatrixClient) -> None:
    admin, _, room = await _room_with_member(hs)
    reply = await _redact(hs, admin, room, "$nosuchevent")
    assert reply.status == 404
    assert reply.errcode == "M_NOT_FOUND"


async def test_redacting_an_event_of_another_room_is_a_bad_request(hs: MatrixClient) -> None:
    # As Synapse: 400 "Cannot redact event from a different room".
    admin, _, room = await _room_with_member(hs)
    other = await hs.create_room(admin)
    event_id = await hs.send(admin, other, {"body": "elsewhere"})
    reply = await _redact(hs, admin, room, event_id)
    assert reply.status == 400
    assert (await _get(hs, admin, other, event_id))["content"] == {"body": "elsewhere"}


async def test_retried_redaction_makes_one_redaction(hs: MatrixClient) -> None:
    _, member, room = await _room_with_member(hs)
    event_id = await hs.send(member, room, {"body": "x"})
    path = f"rooms/{room}/redact/{event_id}/redo-1"
    first = await hs.ok("PUT", path, {}, user=member)
    second = await hs.ok("PUT", path, {}, user=member)
    assert first["event_id"] == second["event_id"]


async def test_redaction_txn_id_does_not_collide_with_a_send_txn_id(hs: MatrixClient) -> None:
    _, member, room = await _room_with_member(hs)
    message = await hs.send(member, room, {"body": "x"}, txn_id="same-7")
    redaction = await hs.ok("PUT", f"rooms/{room}/redact/{message}/same-7", {}, user=member)
    assert redaction["event_id"] != message
    served = await _get(hs, member, room, redaction["event_id"])
    assert served["unsigned"]["transaction_id"] == "same-7"


# Relations


async def _relations(hs: MatrixClient, target: str) -> dict[str, asyncpg.Record]:
    async with _pool(hs).acquire() as conn:
        rows = await conn.fetch(
            "SELECT event_id, room_id, rel_type, type, sender, aggregation_key"
            " FROM event_relations WHERE relates_to = $1",
            target,
        )
    return {row["rel_type"]: row for row in rows}


async def test_edits_reactions_and_thread_replies_are_indexed(hs: MatrixClient) -> None:
    admin, member, room = await _room_with_member(hs)
    root = await hs.send(admin, room, {"msgtype": "m.text", "body": "root"})
    edit = await hs.send(
        admin,
        room,
        {
            "msgtype": "m.text",
            "body": "* root!",
            "m.new_content": {"msgtype": "m.text", "body": "root!"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": root},
        },
    )
    reaction = await hs.send(
        member,
        room,
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": root, "key": "👍"}},
        event_type="m.reaction",
    )
    reply = await hs.send(
        member,
        room,
        {
            "msgtype": "m.text",
            "body": "in a thread",
            "m.relates_to": {"rel_type": "m.thread", "event_id": root},
        },
    )
    relations = await _relations(hs, root)
    assert set(relations) == {"m.replace", "m.annotation", "m.thread"}
    assert relations["m.replace"]["event_id"] == edit
    assert relations["m.replace"]["sender"] == admin.user_id
    assert relations["m.annotation"]["event_id"] == reaction
    assert relations["m.annotation"]["type"] == "m.reaction"
    assert relations["m.annotation"]["aggregation_key"] == "👍"
    assert relations["m.thread"]["event_id"] == reply
    assert all(row["room_id"] == room for row in relations.values())
    served = await _get(hs, member, room, reaction)
    assert served["content"]["m.relates_to"]["key"] == "👍"


async def test_reply_without_rel_type_is_not_indexed_as_a_relation(hs: MatrixClient) -> None:
    admin, _, room = await _room_with_member(hs)
    root = await hs.send(admin, room, {"body": "question"})
    await hs.send(
        admin,
        room,
        {"body": "answer", "m.relates_to": {"m.in_reply_to": {"event_id": root}}},
    )
    assert await _relations(hs, root) == {}


# Our own event types under power levels


async def test_device_commands_need_the_level_the_room_sets(hs: MatrixClient) -> None:
    admin, member, room = await _room_with_member(
        hs, power_level_content_override={"events": {"com.linkchat.device.command": 50}}
    )
    command = {"device_id": "LAMP", "command": "on"}
    refused = await hs.request(
        "PUT", f"rooms/{room}/send/com.linkchat.device.command/c1", command, user=member
    )
    assert refused.status == 403
    assert refused.errcode == "M_FORBIDDEN"
    assert "50" in refused.body["error"]
    await hs.set_level(admin, room, member, 50)
    accepted = await hs.request(
        "PUT", f"rooms/{room}/send/com.linkchat.device.command/c2", command, user=member
    )
    assert accepted.status == 200
    served = await _get(hs, admin, room, accepted.body["event_id"])
    assert served["type"] == "com.linkchat.device.command"
    assert served["content"] == command


async def test_member_cannot_set_state_keyed_by_another_user(hs: MatrixClient) -> None:
    admin, member, room = await _room_with_member(
        hs, power_level_content_override={"state_default": 0}
    )
    own = await hs.request(
        "PUT",
        f"rooms/{room}/state/com.linkchat.device.capabilities/{member.user_id}",
        {"commands": ["ping"]},
        user=member,
    )
    assert own.status == 200
    reply = await hs.request(
        "PUT",
        f"rooms/{room}/state/com.linkchat.device.capabilities/{admin.user_id}",
        {"commands": ["ping"]},
        user=member,
    )
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"
    missing = await hs.request(
        "GET",
        f"rooms/{room}/state/com.linkchat.device.capabilities/{admin.user_id}",
        user=admin,
    )
    assert missing.status == 404


# Ordering and the hash chain


async def test_each_send_gets_a_later_stream_position(hs: MatrixClient) -> None:
    admin, member, room = await _room_with_member(hs)
    sent = [await hs.send(sender, room) for sender in (admin, member, admin, member, admin)]
    positions = {row["event_id"]: row["stream_position"] for row in await _room_events(hs, room)}
    ordered = [positions[event_id] for event_id in sent]
    assert all(a < b for a, b in itertools.pairwise(ordered))


async def test_each_room_event_chains_to_the_previous_one(hs: MatrixClient) -> None:
    admin, member, room = await _room_with_member(hs, name="chained")
    other = await hs.create_room(member, preset="public_chat")
    for _ in range(3):
        await hs.send(admin, room)
        await hs.send(member, other)
    rows = await _room_events(hs, room)
    assert rows[0]["type"] == "m.room.create"
    previous: str | None = None
    for depth, row in enumerate(rows, start=1):
        pdu = decode(row["json"])
        assert pdu["prev_events"] == ([previous] if previous is not None else [])
        assert pdu["depth"] == depth
        previous = row["event_id"]


async def test_redacted_room_name_is_served_redacted_from_state(hs: MatrixClient) -> None:
    admin, member, room = await _room_with_member(hs, name="Rude name")
    name = await hs.ok("GET", f"rooms/{room}/state/m.room.name/?format=event", user=member)
    assert (await _redact(hs, admin, room, name["event_id"])).status == 200
    assert (await hs.ok("GET", f"rooms/{room}/state/m.room.name/", user=member)) == {}
    state = await hs.ok("GET", f"rooms/{room}/state", user=member)
    served = next(event for event in state if event["type"] == "m.room.name")
    assert served["content"] == {}


async def test_redacted_display_name_is_gone_from_joined_members(hs: MatrixClient) -> None:
    admin, member, room = await _room_with_member(hs)
    join = await hs.ok(
        "GET", f"rooms/{room}/state/m.room.member/{member.user_id}?format=event", user=admin
    )
    assert join["content"]["displayname"]
    await _redact(hs, admin, room, join["event_id"])
    joined = (await hs.ok("GET", f"rooms/{room}/joined_members", user=admin))["joined"]
    assert member.user_id in joined
    assert joined[member.user_id]["display_name"] is None


@pytest.mark.parametrize("path", ["send/m.room.redaction/r1", "state/m.room.redaction/x"])
async def test_redaction_sent_as_a_message_or_state_cannot_reach_another_room(
    hs: MatrixClient, path: str
) -> None:
    victim, _, target_room = await _room_with_member(hs)
    target = await hs.send(victim, target_room, {"body": "mine"})
    mallory = await hs.register()
    own_room = await hs.create_room(mallory)
    reply = await hs.request("PUT", f"rooms/{own_room}/{path}", {"redacts": target}, user=mallory)
    assert reply.status == 400
    assert (await _get(hs, victim, target_room, target))["content"] == {"body": "mine"}


async def test_the_create_event_cannot_be_redacted(hs: MatrixClient) -> None:
    admin, member, room = await _room_with_member(hs)
    create = await hs.ok("GET", f"rooms/{room}/state/m.room.create/?format=event", user=admin)
    reply = await _redact(hs, admin, room, create["event_id"])
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"
    served = await hs.ok("GET", f"rooms/{room}/state/m.room.create/", user=member)
    assert served["room_version"]


async def test_redaction_sent_as_a_message_works_within_the_room(hs: MatrixClient) -> None:
    admin, member, room = await _room_with_member(hs)
    target = await hs.send(member, room, {"body": "spam"})
    reply = await hs.request(
        "PUT", f"rooms/{room}/send/m.room.redaction/r1", {"redacts": target}, user=admin
    )
    assert reply.status == 200
    assert (await _get(hs, member, room, target))["content"] == {}
