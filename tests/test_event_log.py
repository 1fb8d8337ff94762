"""The log itself: signed, hashed, chained, append-only, and the projections are its fold."""

from __future__ import annotations

import asyncpg
import pytest

from homeserver.api.app_keys import SIGNING_KEYS
from homeserver.audit.replay import replay
from homeserver.events.canonical import decode
from homeserver.events.hashing import content_hash_matches, event_id_for
from homeserver.events.signing import verify_event_signature
from homeserver.projections.changes import ALL_TABLES
from tests.conftest import AppFactory
from tests.matrix import MatrixClient


async def _scenario(hs: MatrixClient) -> str:
    alice, bob, carol = await hs.register(), await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat", name="log", room_alias_name="log")
    await hs.join(bob, room)
    await hs.join(carol, room)
    first = await hs.send(bob, room)
    await hs.send(
        bob,
        room,
        {
            "msgtype": "m.text",
            "body": "* edit",
            "m.relates_to": {"rel_type": "m.replace", "event_id": first},
        },
    )
    await hs.send(
        carol,
        room,
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": first, "key": "+1"}},
        "m.reaction",
    )
    await hs.ok("PUT", f"rooms/{room}/redact/{first}/r1", {}, user=alice)
    await hs.ok("POST", f"rooms/{room}/kick", {"user_id": carol.user_id}, user=alice)
    await hs.ok("POST", f"rooms/{room}/ban", {"user_id": carol.user_id}, user=alice)
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=bob)
    await hs.ok("POST", f"rooms/{room}/forget", {}, user=bob)
    await hs.ok("PUT", f"devices/{alice.device_id}", {"display_name": "laptop"}, user=alice)
    await hs.ok("POST", "logout", {}, user=carol)
    await hs.ok("DELETE", "directory/room/%23log:localhost", user=alice)
    return room


async def test_every_event_is_hashed_signed_and_chained(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    hs = await start_app(dsn=fresh_dsn)
    await _scenario(hs)
    key = hs.app[SIGNING_KEYS].current
    conn = await asyncpg.connect(fresh_dsn)
    try:
        rows = await conn.fetch("SELECT * FROM events ORDER BY stream_position")
    finally:
        await conn.close()
    assert rows
    heads: dict[str, str] = {}
    for row in rows:
        pdu = decode(row["json"])
        assert content_hash_matches(pdu), row["event_id"]
        assert event_id_for(pdu) == row["event_id"]
        assert verify_event_signature(pdu, key.server_name, key.verify_key)
        expected_prev = [heads[row["room_id"]]] if row["room_id"] in heads else []
        assert pdu["prev_events"] == expected_prev, "the chain of the room is broken"
        heads[row["room_id"]] = row["event_id"]


async def test_event_log_rejects_update_and_delete(hs: MatrixClient, run_dsn: str) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    event_id = await hs.send(alice, room)
    conn = await asyncpg.connect(run_dsn)
    try:
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("UPDATE events SET json = '{}' WHERE event_id = $1", event_id)
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("DELETE FROM events WHERE event_id = $1", event_id)
        assert await conn.fetchval("SELECT count(*) FROM events WHERE event_id = $1", event_id) == 1
    finally:
        await conn.close()


async def test_live_projections_equal_a_replay_of_the_log_from_position_zero(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    hs = await start_app(dsn=fresh_dsn)
    await _scenario(hs)
    conn = await asyncpg.connect(fresh_dsn)
    try:
        result = await replay(conn)
    finally:
        await conn.close()
    assert result.tables == len(ALL_TABLES)
    assert result.events > 0 and result.rows > 0
    assert result.identical, "\n".join(d.describe() for d in result.differences)
