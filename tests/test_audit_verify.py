"""`audit verify`: an untouched log passes; any tampering is named, event and check."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import asyncpg
from signedjson.key import generate_signing_key

from homeserver.api.keys import SERVER_KEY
from homeserver.audit.verify import Failure, LogVerifier
from homeserver.events.canonical import decode, encode
from homeserver.events.signing import ServerKey
from homeserver.store.audit import log_in_order
from tests.conftest import AppFactory
from tests.matrix import MatrixClient

REPO = Path(__file__).resolve().parent.parent


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env)


async def _log(start_app: AppFactory, dsn: str) -> tuple[MatrixClient, str]:
    hs = await start_app(dsn=dsn)
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    for n in range(5):
        await hs.send(bob, room, {"msgtype": "m.text", "body": f"m{n}"})
    return hs, room


async def _verify(hs: MatrixClient, dsn: str) -> Failure | None:
    key = hs.app[SERVER_KEY]
    verifier = LogVerifier(key.server_name, {key.key_id: key.verify_key})
    conn = await asyncpg.connect(dsn)
    try:
        async for position, event_id, pdu in log_in_order(conn, batch=7):
            if (failure := verifier.check(position, event_id, pdu)) is not None:
                return failure
    finally:
        await conn.close()
    return None


async def _tamper(dsn: str, sql: str, *args: object) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
        await conn.execute(sql, *args)
        await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
    finally:
        await conn.close()


async def _message(dsn: str, room: str, body: str) -> tuple[int, str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT stream_position, event_id, json FROM events WHERE room_id = $1"
            " AND json::jsonb -> 'content' ->> 'body' = $2",
            room,
            body,
        )
    finally:
        await conn.close()
    return row["stream_position"], row["event_id"], row["json"]


async def test_an_untouched_log_verifies(start_app: AppFactory, fresh_dsn: str) -> None:
    hs, _ = await _log(start_app, fresh_dsn)
    assert await _verify(hs, fresh_dsn) is None


async def test_one_changed_byte_of_content_is_named(start_app: AppFactory, fresh_dsn: str) -> None:
    hs, room = await _log(start_app, fresh_dsn)
    position, event_id, raw = await _message(fresh_dsn, room, "m2")
    await _tamper(
        fresh_dsn,
        "UPDATE events SET json = $1 WHERE stream_position = $2",
        raw.replace('"m2"', '"m3"'),
        position,
    )
    failure = await _verify(hs, fresh_dsn)
    assert failure is not None
    assert (failure.event_id, failure.check) == (event_id, "content hash")


async def test_a_deleted_event_breaks_the_chain_and_is_named(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    hs, room = await _log(start_app, fresh_dsn)
    position, _, _ = await _message(fresh_dsn, room, "m2")
    await _tamper(fresh_dsn, "DELETE FROM events WHERE stream_position = $1", position)
    failure = await _verify(hs, fresh_dsn)
    assert failure is not None
    assert failure.check == "position" and failure.position == position + 1
    assert "gap" in failure.reason


async def test_two_reordered_positions_are_named(start_app: AppFactory, fresh_dsn: str) -> None:
    hs, room = await _log(start_app, fresh_dsn)
    first, _, _ = await _message(fresh_dsn, room, "m1")
    second, _, _ = await _message(fresh_dsn, room, "m2")
    await _tamper(
        fresh_dsn, "UPDATE events SET stream_position = -1 WHERE stream_position = $1", first
    )
    await _tamper(
        fresh_dsn,
        "UPDATE events SET stream_position = $1 WHERE stream_position = $2",
        first,
        second,
    )
    await _tamper(
        fresh_dsn, "UPDATE events SET stream_position = $1 WHERE stream_position = -1", second
    )
    failure = await _verify(hs, fresh_dsn)
    assert failure is not None
    assert failure.check == "chain" and failure.position == first


async def test_a_signature_forged_with_another_key_is_named(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    hs, room = await _log(start_app, fresh_dsn)
    position, event_id, raw = await _message(fresh_dsn, room, "m4")
    pdu = decode(raw)
    real = hs.app[SERVER_KEY]
    forger = ServerKey(real.server_name, generate_signing_key(real.key.version))
    pdu["signatures"] = forger.signature_for(pdu)
    await _tamper(
        fresh_dsn,
        "UPDATE events SET json = $1 WHERE stream_position = $2",
        encode(pdu).decode(),
        position,
    )
    failure = await _verify(hs, fresh_dsn)
    assert failure is not None
    assert (failure.event_id, failure.check) == (event_id, "signature")


async def test_audit_verify_command_exits_0_then_1_after_tampering(
    start_app: AppFactory, fresh_dsn: str, data_dir: Path, tmp_path: Path
) -> None:
    _, room = await _log(start_app, fresh_dsn)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"database": {"dsn": fresh_dsn}, "data_dir": str(data_dir)}))
    command = [sys.executable, "-m", "homeserver", "audit", "verify", "--config", str(config)]
    env = {"PATH": "/usr/bin:/bin"}
    good = await asyncio.to_thread(_run, command, env)
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith("ok: ")
    position, event_id, raw = await _message(fresh_dsn, room, "m0")
    await _tamper(
        fresh_dsn,
        "UPDATE events SET json = $1 WHERE stream_position = $2",
        raw.replace('"m0"', '"mX"'),
        position,
    )
    bad = await asyncio.to_thread(_run, command, env)
    assert bad.returncode == 1
    assert event_id in bad.stderr and "content hash" in bad.stderr
