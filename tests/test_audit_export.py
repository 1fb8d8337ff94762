"""`audit export` and `audit verify --file`: an export verifies offline; a tampered one is named."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import asyncpg
import pytest

from homeserver.api.app_keys import SIGNING_KEYS
from homeserver.audit.export import ExportError, export_log, verify_export
from homeserver.events.signing import load_key_ring, public_keys_from_json
from tests.conftest import AppFactory
from tests.matrix import MatrixClient
from tests.processes import run_homeserver


async def _log(hs: MatrixClient) -> str:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat", name="exported")
    await hs.join(bob, room)
    other = await hs.create_room(bob)
    for n in range(4):
        await hs.send(bob, room, {"msgtype": "m.text", "body": f"line {n}"})
        await hs.send(bob, other, {"msgtype": "m.text", "body": f"elsewhere {n}"})
    return room


async def _export(hs: MatrixClient, dsn: str, path: Path, room: str | None = None) -> None:
    ring = hs.app[SIGNING_KEYS].ring
    out = io.StringIO()
    conn = await asyncpg.connect(dsn)
    try:
        await export_log(conn, out, ring.server_name, ring.keys, room, 1_700_000_000_000)
    finally:
        await conn.close()
    await asyncio.to_thread(path.write_text, out.getvalue())


@pytest.fixture
async def exported(start_app: AppFactory, fresh_dsn: str, tmp_path: Path) -> tuple[Path, str]:
    hs = await start_app(dsn=fresh_dsn)
    room = await _log(hs)
    path = tmp_path / "log.jsonl"
    await _export(hs, fresh_dsn, path)
    return path, room


async def test_a_whole_log_export_verifies_offline(exported: tuple[Path, str]) -> None:
    path, _ = exported
    lines = path.read_text().splitlines()
    header, end = json.loads(lines[0]), json.loads(lines[-1])
    assert header["scope"] == "all" and header["verify_keys"]
    assert end["end"]["events"] == len(lines) - 2
    outcome = await verify_export(path, workers=0)
    assert outcome.failure is None, str(outcome.failure)
    assert outcome.verifier.checked == len(lines) - 2
    # The same with the checks spread over worker processes.
    assert (await verify_export(path, workers=2)).failure is None


async def test_a_one_room_export_verifies_its_chain(
    start_app: AppFactory, fresh_dsn: str, tmp_path: Path
) -> None:
    hs = await start_app(dsn=fresh_dsn)
    room = await _log(hs)
    path = tmp_path / "room.jsonl"
    await _export(hs, fresh_dsn, path, room)
    events = [json.loads(line) for line in path.read_text().splitlines()[1:-1]]
    assert {event["event"]["room_id"] for event in events} == {room}
    positions = [event["position"] for event in events]
    assert positions != list(range(positions[0], positions[0] + len(positions)))  # gaps
    outcome = await verify_export(path, workers=0)
    assert outcome.failure is None, str(outcome.failure)
    assert (outcome.scope, outcome.verifier.checked) == (room, len(events))


async def test_a_tampered_export_line_is_named(exported: tuple[Path, str]) -> None:
    path, _ = exported
    lines = path.read_text().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if '"line 2"' in line)
    event_id = json.loads(lines[index])["event_id"]
    lines[index] = lines[index].replace('"line 2"', '"line 9"')
    path.write_text("".join(lines))
    outcome = await verify_export(path, workers=0)
    assert outcome.failure is not None
    assert (outcome.failure.event_id, outcome.failure.check) == (event_id, "content hash")


async def test_a_deleted_export_line_is_named(exported: tuple[Path, str]) -> None:
    path, _ = exported
    lines = path.read_text().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if '"line 1"' in line)
    gone = json.loads(lines[index])["position"]
    path.write_text("".join(lines[:index] + lines[index + 1 :]))
    outcome = await verify_export(path, workers=0)
    assert outcome.failure is not None
    assert outcome.failure.check == "position" and outcome.failure.position == gone + 1


@pytest.mark.parametrize("cut", ["end line", "last event and end line"])
async def test_an_export_cut_short_fails(exported: tuple[Path, str], cut: str) -> None:
    path, _ = exported
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1] if cut == "end line" else lines[:-2]))
    outcome = await verify_export(path, workers=0)
    assert outcome.failure is not None
    assert outcome.failure.check == "export" and "cut short" in outcome.failure.reason


async def test_an_export_checked_against_other_trusted_keys_fails(
    exported: tuple[Path, str], tmp_path: Path
) -> None:
    path, _ = exported
    stranger = load_key_ring(tmp_path / "stranger.key", "localhost")
    outcome = await verify_export(path, stranger.keys, workers=0)
    assert outcome.failure is not None and outcome.failure.check == "signature"


async def test_a_file_that_is_not_an_export_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.jsonl"
    path.write_text('{"hello": 1}\n')
    with pytest.raises(ExportError):
        await verify_export(path, workers=0)


async def _homeserver(*args: str) -> tuple[int, str, str]:
    outcome = await run_homeserver(*args)
    return outcome.code, outcome.stdout, outcome.stderr


async def test_export_and_verify_file_commands(
    start_app: AppFactory, fresh_dsn: str, data_dir: Path, tmp_path: Path
) -> None:
    hs = await start_app(dsn=fresh_dsn)
    room = await _log(hs)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"database": {"dsn": fresh_dsn}, "data_dir": str(data_dir)}))
    everything, one_room = tmp_path / "all.jsonl", tmp_path / "room.jsonl"
    code, out, err = await _homeserver(
        "audit", "export", "--all", "--out", str(everything), "--config", str(config)
    )
    assert code == 0, err
    assert out.startswith("exported ")
    code, out, err = await _homeserver(
        "audit", "export", "--room", room, "--out", str(one_room), "--config", str(config)
    )
    assert code == 0, err
    # Offline: no config, no database.
    code, out, err = await _homeserver("audit", "verify", "--file", str(everything))
    assert code == 0, err
    assert out.startswith(f"ok: export {everything}: ") and "positions contiguous" in out
    code, out, err = await _homeserver("audit", "verify", "--file", str(one_room))
    assert code == 0, err
    assert "positions are not contiguous in a one-chain export" in out
    # Against the keys the server publishes, saved by the auditor.
    published = tmp_path / "keys.json"
    published.write_text(json.dumps(await hs.ok("GET", "/_matrix/key/v2/server")))
    assert public_keys_from_json(json.loads(published.read_text()))
    code, out, err = await _homeserver(
        "audit", "verify", "--file", str(everything), "--keys", str(published)
    )
    assert code == 0, err
    assert "trusted keys" in out
    lines = one_room.read_text().splitlines(keepends=True)
    lines[3] = lines[3].replace('"origin_server_ts":', '"origin_server_ts":1', 1)
    one_room.write_text("".join(lines))
    code, out, err = await _homeserver("audit", "verify", "--file", str(one_room))
    assert code == 1
    assert err.startswith("FAILED: ") and json.loads(lines[3])["event_id"] in err
