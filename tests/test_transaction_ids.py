"""Transaction IDs: a retry of one request is answered once, a new request is never lost.

The spec identifies a retransmission by the access token's device, the
transaction ID and the request path: the same transaction ID on another path
(another room, event type or redacted event) is a new request.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from homeserver.api.app_keys import POOL
from homeserver.api.to_device import TO_DEVICE
from tests.conftest import AppFactory
from tests.matrix import MatrixClient, User


async def _bodies(hs: MatrixClient, user: User, room: str) -> list[Any]:
    """The bodies of the room's messages, oldest first, as /messages serves them."""
    reply = await hs.ok("GET", f"rooms/{room}/messages?dir=b&limit=100", user=user)
    return [
        e["content"].get("body") for e in reversed(reply["chunk"]) if e["type"] == "m.room.message"
    ]


async def _event_count(hs: MatrixClient, room: str) -> int:
    async with hs.app[POOL].acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM events WHERE room_id = $1", room))


async def _redact(hs: MatrixClient, user: User, room: str, event_id: str, txn_id: str) -> str:
    reply = await hs.ok("PUT", f"rooms/{room}/redact/{event_id}/{txn_id}", {}, user=user)
    return str(reply["event_id"])


async def _is_redacted(hs: MatrixClient, user: User, room: str, event_id: str) -> bool:
    event = await hs.ok("GET", f"rooms/{room}/event/{event_id}", user=user)
    return "redacted_because" in event["unsigned"]


async def _send_to_device(
    hs: MatrixClient, sender: User, to: User, event_type: str, txn_id: str, content: Any
) -> None:
    messages = {to.user_id: {to.device_id: content}}
    await hs.ok("PUT", f"sendToDevice/{event_type}/{txn_id}", {"messages": messages}, user=sender)


async def _inbox(hs: MatrixClient, user: User) -> list[tuple[str, Any]]:
    events, _ = await hs.app[TO_DEVICE].pending(user.user_id, user.device_id, 0)
    return [(event["type"], event["content"]) for event in events]


# Sending


async def test_same_txn_id_in_another_room_delivers_both_messages(hs: MatrixClient) -> None:
    alice = await hs.register()
    first_room, second_room = await hs.create_room(alice), await hs.create_room(alice)
    first = await hs.send(alice, first_room, {"msgtype": "m.text", "body": "one"}, txn_id="T")
    second = await hs.send(alice, second_room, {"msgtype": "m.text", "body": "two"}, txn_id="T")
    assert first != second
    assert await _bodies(hs, alice, first_room) == ["one"]
    assert await _bodies(hs, alice, second_room) == ["two"]


async def test_same_txn_id_with_another_event_type_makes_a_new_event(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    message = await hs.send(alice, room, {"msgtype": "m.text", "body": "hi"}, txn_id="T")
    other = await hs.send(alice, room, {"x": 1}, event_type="com.example.ping", txn_id="T")
    assert message != other
    event = await hs.ok("GET", f"rooms/{room}/event/{other}", user=alice)
    assert event["type"] == "com.example.ping"


async def test_retry_with_another_body_returns_the_first_event(hs: MatrixClient) -> None:
    # As Synapse: the path and transaction ID identify the request, not its body.
    alice = await hs.register()
    room = await hs.create_room(alice)
    before = await _event_count(hs, room)
    first = await hs.send(alice, room, {"msgtype": "m.text", "body": "first"}, txn_id="T")
    retry = await hs.send(alice, room, {"msgtype": "m.text", "body": "edited"}, txn_id="T")
    assert retry == first
    assert await _event_count(hs, room) == before + 1
    assert await _bodies(hs, alice, room) == ["first"]


async def test_retries_racing_with_sends_to_other_rooms_deliver_each_once(
    hs: MatrixClient,
) -> None:
    alice = await hs.register()
    rooms = [await hs.create_room(alice) for _ in range(3)]
    counts = [await _event_count(hs, room) for room in rooms]
    sent = await asyncio.gather(
        *(
            hs.send(alice, room, {"msgtype": "m.text", "body": room}, txn_id="race")
            for _ in range(4)
            for room in rooms
        )
    )
    by_room = {
        room: {event_id for event_id, r in zip(sent, rooms * 4, strict=True) if r == room}
        for room in rooms
    }
    assert all(len(ids) == 1 for ids in by_room.values()), by_room
    assert len(set(sent)) == len(rooms)
    for room, count in zip(rooms, counts, strict=True):
        assert await _event_count(hs, room) == count + 1
        assert await _bodies(hs, alice, room) == [room]


async def test_retry_after_a_restart_returns_the_same_event(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    before = await start_app(dsn=fresh_dsn)
    alice = await before.register()
    room = await before.create_room(alice)
    first = await before.send(alice, room, {"msgtype": "m.text", "body": "once"}, txn_id="T")
    await before.http.close()
    after = await start_app(dsn=fresh_dsn)
    count = await _event_count(after, room)
    assert await after.send(alice, room, {"msgtype": "m.text", "body": "once"}, txn_id="T") == first
    assert await _event_count(after, room) == count
    other_room = await after.create_room(alice)
    elsewhere = await after.send(
        alice, other_room, {"msgtype": "m.text", "body": "new"}, txn_id="T"
    )
    assert elsewhere != first
    assert await _bodies(after, alice, other_room) == ["new"]


# Redacting


async def test_same_txn_id_redacting_another_event_redacts_it_too(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    one, two = await hs.send(alice, room), await hs.send(alice, room)
    first = await _redact(hs, alice, room, one, "R")
    second = await _redact(hs, alice, room, two, "R")
    assert first != second
    assert await _is_redacted(hs, alice, room, one)
    assert await _is_redacted(hs, alice, room, two)


async def test_retried_redaction_returns_the_same_event_and_appends_nothing(
    hs: MatrixClient,
) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    target = await hs.send(alice, room)
    first = await _redact(hs, alice, room, target, "R")
    count = await _event_count(hs, room)
    assert await _redact(hs, alice, room, target, "R") == first
    assert await _event_count(hs, room) == count


async def test_redaction_shows_the_client_its_own_transaction_id(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    target = await hs.send(alice, room)
    since = (await hs.ok("GET", "sync", user=alice))["next_batch"]
    redaction = await _redact(hs, alice, room, target, "mine-1")
    served = await hs.ok("GET", f"rooms/{room}/event/{redaction}", user=alice)
    assert served["unsigned"]["transaction_id"] == "mine-1"
    synced = await hs.ok("GET", f"sync?since={since}&timeout=0", user=alice)
    timeline = synced["rooms"]["join"][room]["timeline"]["events"]
    assert [e["unsigned"].get("transaction_id") for e in timeline] == ["mine-1"]


# Send-to-device


async def test_same_to_device_txn_id_with_another_event_type_is_delivered(
    hs: MatrixClient,
) -> None:
    alice, bob = await hs.register(), await hs.register()
    await _send_to_device(hs, alice, bob, "m.room_key_request", "T", {"n": 1})
    await _send_to_device(hs, alice, bob, "m.secret.request", "T", {"n": 2})
    assert await _inbox(hs, bob) == [
        ("m.room_key_request", {"n": 1}),
        ("m.secret.request", {"n": 2}),
    ]


async def test_retried_to_device_message_is_delivered_once(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    await _send_to_device(hs, alice, bob, "m.room_key_request", "T", {"n": 1})
    await _send_to_device(hs, alice, bob, "m.room_key_request", "T", {"n": 1})
    await asyncio.gather(
        *(_send_to_device(hs, alice, bob, "m.room_key_request", "T", {"n": 2}) for _ in range(3))
    )
    assert await _inbox(hs, bob) == [("m.room_key_request", {"n": 1})]


# Rows stored before transaction IDs were scoped to the request path


async def _as_before_scoping(conn: asyncpg.Connection) -> None:
    """Put the database back as it was before the scoping migration, with its rows
    in the shape that server stored them (a redaction's ID prefixed "redact:")."""
    await conn.execute(
        """
        UPDATE event_txn_ids SET txn_id = 'redact:' || txn_id WHERE scope LIKE 'redact/%';
        ALTER TABLE event_txn_ids DROP CONSTRAINT event_txn_ids_pkey;
        ALTER TABLE event_txn_ids DROP COLUMN scope;
        ALTER TABLE event_txn_ids ADD PRIMARY KEY (user_id, device_id, txn_id);
        ALTER TABLE device_inbox_txns DROP CONSTRAINT device_inbox_txns_pkey;
        ALTER TABLE device_inbox_txns DROP COLUMN scope;
        ALTER TABLE device_inbox_txns ADD PRIMARY KEY (user_id, device_id, txn_id);
        DELETE FROM schema_migrations WHERE name LIKE '%\\_transaction\\_scopes';
        """
    )


async def test_retries_of_requests_stored_before_the_upgrade_are_still_recognised(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    before = await start_app(dsn=fresh_dsn)
    alice, bob = await before.register(), await before.register()
    room = await before.create_room(alice)
    message = await before.send(alice, room, {"msgtype": "m.text", "body": "m"}, txn_id="T")
    redaction = await _redact(before, alice, room, await before.send(alice, room), "T")
    await _send_to_device(before, alice, bob, "m.room_key_request", "T", {"n": 1})
    async with before.app[POOL].acquire() as conn:
        await _as_before_scoping(conn)
    await before.http.close()

    after = await start_app(dsn=fresh_dsn)
    count = await _event_count(after, room)
    assert await after.send(alice, room, {"msgtype": "m.text", "body": "m"}, txn_id="T") == message
    redacted = (await after.ok("GET", f"rooms/{room}/event/{redaction}", user=alice))["content"]
    assert await _redact(after, alice, room, redacted["redacts"], "T") == redaction
    assert await _event_count(after, room) == count
    await _send_to_device(after, alice, bob, "m.room_key_request", "T", {"n": 1})
    assert await _inbox(after, bob) == [("m.room_key_request", {"n": 1})]
    # And the upgraded rows no longer swallow the same ID on another path.
    other_room = await after.create_room(alice)
    await after.send(alice, other_room, {"msgtype": "m.text", "body": "new"}, txn_id="T")
    assert await _bodies(after, alice, other_room) == ["new"]
    served = await after.ok("GET", f"rooms/{room}/event/{redaction}", user=alice)
    assert served["unsigned"]["transaction_id"] == "T"
