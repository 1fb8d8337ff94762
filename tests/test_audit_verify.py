"""`audit verify`: an untouched log passes; any tampering is named, event and check."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from signedjson.key import generate_signing_key

from homeserver.api.app_keys import SIGNING_KEYS
from homeserver.audit.verify import Failure
from homeserver.events.canonical import decode, encode
from homeserver.events.signing import ServerKey
from tests.audit_log import server_verifier, verify
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


async def _verify(
    hs: MatrixClient, dsn: str, workers: int = 0, room: str | None = None, since: int = 0
) -> Failure | None:
    """The database check as the command runs it; small batches, so the pool sees many chunks."""
    return await verify(dsn, server_verifier(hs), room, since, workers=workers, batch=7)


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


async def _change_body(dsn: str, room: str, body: str, new_body: str) -> tuple[int, str]:
    position, event_id, raw = await _message(dsn, room, body)
    await _tamper(
        dsn,
        "UPDATE events SET json = $1 WHERE stream_position = $2",
        raw.replace(f'"{body}"', f'"{new_body}"'),
        position,
    )
    return position, event_id


@pytest.mark.parametrize("workers", [0, 2])
async def test_an_untouched_log_verifies(
    start_app: AppFactory, fresh_dsn: str, workers: int
) -> None:
    hs, room = await _log(start_app, fresh_dsn)
    assert await _verify(hs, fresh_dsn, workers) is None
    assert await _verify(hs, fresh_dsn, workers, room=room) is None
    assert await _verify(hs, fresh_dsn, workers, since=5) is None


async def test_one_changed_byte_of_content_is_named(start_app: AppFactory, fresh_dsn: str) -> None:
    hs, room = await _log(start_app, fresh_dsn)
    _, event_id = await _change_body(fresh_dsn, room, "m2", "m3")
    failure = await _verify(hs, fresh_dsn)
    assert failure is not None
    assert (failure.event_id, failure.check) == (event_id, "content hash")


async def test_the_first_bad_event_is_named_when_workers_check_in_parallel(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    hs, room = await _log(start_app, fresh_dsn)
    _, first = await _change_body(fresh_dsn, room, "m1", "mA")
    await _change_body(fresh_dsn, room, "m4", "mB")
    failure = await _verify(hs, fresh_dsn, workers=2)
    assert failure is not None
    assert (failure.event_id, failure.check) == (first, "content hash")


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
    # Verifying the room alone, positions may skip; its chain may not.
    failure = await _verify(hs, fresh_dsn, room=room)
    assert failure is not None
    assert failure.check == "chain" and failure.position == position + 1


async def test_events_cut_off_the_end_of_the_log_are_named(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    hs, room = await _log(start_app, fresh_dsn)
    position, event_id, _ = await _message(fresh_dsn, room, "m4")
    await _tamper(fresh_dsn, "DELETE FROM events WHERE stream_position = $1", position)
    failure = await _verify(hs, fresh_dsn)
    assert failure is not None
    assert (failure.check, failure.event_id) == ("chain head", event_id)


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
    real = hs.app[SIGNING_KEYS].current
    forger = ServerKey(real.server_name, generate_signing_key(real.key.version))
    pdu["signatures"] = forger.signature_for(pdu)
    await _tamper(
        fresh_dsn,
        "UPDATE events SET json = $1 WHERE stream_position = $2",
        encode(pdu).decode(),
        position,
    )
    failure = await _verify(hs, fresh_dsn, workers=2)
    assert failure is not None
    assert (failure.event_id, failure.check) == (event_id, "signature")
    assert "does not verify" in failure.reason


async def test_content_removed_from_an_event_never_redacted_is_named(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    hs, room = await _log(start_app, fresh_dsn)
    position, event_id, raw = await _message(fresh_dsn, room, "m3")
    pdu = decode(raw)
    pdu["content"] = {}  # what purge-redacted leaves, but there is no redaction
    await _tamper(
        fresh_dsn,
        "UPDATE events SET json = $1 WHERE stream_position = $2",
        encode(pdu).decode(),
        position,
    )
    failure = await _verify(hs, fresh_dsn)
    assert failure is not None
    assert (failure.event_id, failure.check) == (event_id, "content hash")
    assert "never redacted" in failure.reason


def _config(path: Path, dsn: str, data_dir: Path) -> Path:
    path.write_text(json.dumps({"database": {"dsn": dsn}, "data_dir": str(data_dir)}))
    return path


async def test_audit_verify_command_exits_0_then_1_after_tampering(
    start_app: AppFactory, fresh_dsn: str, data_dir: Path, tmp_path: Path
) -> None:
    _, room = await _log(start_app, fresh_dsn)
    config = _config(tmp_path / "config.yaml", fresh_dsn, data_dir)
    command = [sys.executable, "-m", "homeserver", "audit", "verify", "--config", str(config)]
    env = {"PATH": "/usr/bin:/bin"}
    good = await asyncio.to_thread(_run, command, env)
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith("ok: ")
    assert "events in" in good.stdout and "events/s" in good.stdout
    _, event_id = await _change_body(fresh_dsn, room, "m0", "mX")
    bad = await asyncio.to_thread(_run, command, env)
    assert bad.returncode == 1
    assert event_id in bad.stderr and "content hash" in bad.stderr
