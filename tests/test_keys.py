"""Signing-key rotation: new events get the new key, old events still verify with the old one."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from signedjson.key import decode_verify_key_bytes, encode_signing_key_base64, generate_signing_key
from signedjson.sign import verify_signed_json
from unpaddedbase64 import decode_base64

from homeserver.api.app_keys import SIGNING_KEYS
from homeserver.audit.verify import Failure, LogVerifier
from homeserver.events.live_keys import LiveKeyRing
from homeserver.events.sealing import seal
from homeserver.events.signing import (
    load_key_ring,
    read_public_keys,
    ring_path,
    rotate_key,
)
from tests.audit_log import verify
from tests.conftest import AppFactory
from tests.matrix import MatrixClient
from tests.processes import V3, ServerProcess, call, register, run_homeserver

SERVER = "localhost"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _message(origin_server_ts: int) -> dict[str, Any]:
    """A message event's PDU, before sealing."""
    return {
        "auth_events": [],
        "content": {"msgtype": "m.text", "body": "hello"},
        "depth": 1,
        "origin_server_ts": origin_server_ts,
        "prev_events": [],
        "room_id": "!r:localhost",
        "sender": "@a:localhost",
        "type": "m.room.message",
    }


async def _verify(dsn: str, key_path: Path) -> tuple[Failure | None, LogVerifier]:
    verifier = LogVerifier(SERVER, read_public_keys(key_path))
    return await verify(dsn, verifier), verifier


async def _chat(hs: MatrixClient, messages: int = 3) -> str:
    alice = await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    for n in range(messages):
        await hs.send(alice, room, {"msgtype": "m.text", "body": f"before {n}"})
    return room


async def test_events_signed_before_and_after_a_rotation_all_verify(
    start_app: AppFactory, fresh_dsn: str, tmp_path: Path
) -> None:
    key_path = tmp_path / "signing.key"
    before = await start_app(dsn=fresh_dsn, signing_key_path=key_path)
    await _chat(before)
    old_key_id = before.app[SIGNING_KEYS].current.key_id
    await asyncio.sleep(0.01)
    rotate_key(key_path, SERVER, _now_ms(), grace_ms=0)
    await asyncio.sleep(0.01)
    after = await start_app(dsn=fresh_dsn, signing_key_path=key_path)  # the restart
    assert after.app[SIGNING_KEYS].current.key_id != old_key_id
    await _chat(after)
    failure, verifier = await _verify(fresh_dsn, key_path)
    assert failure is None, str(failure)
    assert verifier.keys_used == {old_key_id, after.app[SIGNING_KEYS].current.key_id}


async def test_the_key_endpoint_publishes_old_keys_with_their_expiry(
    start_app: AppFactory, fresh_dsn: str, tmp_path: Path
) -> None:
    key_path = tmp_path / "signing.key"
    old = load_key_ring(key_path, SERVER).current
    rotated_at = _now_ms()
    rotate_key(key_path, SERVER, rotated_at, grace_ms=60_000)
    hs = await start_app(dsn=fresh_dsn, signing_key_path=key_path)
    body = await hs.ok("GET", "/_matrix/key/v2/server")
    current = hs.app[SIGNING_KEYS].current
    assert body["verify_keys"] == {current.key_id: {"key": current.public_key_base64}}
    assert body["old_verify_keys"] == {
        old.key_id: {"key": old.public_key_base64, "expired_ts": rotated_at + 60_000}
    }
    published = decode_verify_key_bytes(
        current.key_id, decode_base64(body["verify_keys"][current.key_id]["key"])
    )
    verify_signed_json(body, SERVER, published)


async def test_a_running_server_signs_with_the_rotated_key_without_a_restart(
    start_app: AppFactory, fresh_dsn: str, tmp_path: Path
) -> None:
    key_path = tmp_path / "signing.key"
    hs = await start_app(dsn=fresh_dsn, signing_key_path=key_path)
    room = await _chat(hs)
    old_key_id = hs.app[SIGNING_KEYS].current.key_id
    rotate_key(key_path, SERVER, _now_ms(), grace_ms=0)  # --grace 0: the old key expires now
    await asyncio.sleep(0.01)
    user = await hs.register()
    await hs.join(user, room)
    await hs.send(user, room, {"msgtype": "m.text", "body": "after the rotation"})
    new_key_id = hs.app[SIGNING_KEYS].current.key_id
    assert new_key_id != old_key_id
    failure, verifier = await _verify(fresh_dsn, key_path)
    assert failure is None, str(failure)
    assert verifier.keys_used == {old_key_id, new_key_id}
    published = await hs.ok("GET", "/_matrix/key/v2/server")
    assert list(published["verify_keys"]) == [new_key_id]
    assert list(published["old_verify_keys"]) == [old_key_id]


async def test_key_files_that_disagree_keep_the_key_in_use(tmp_path: Path) -> None:
    # Another machine rotated; its ring arrives here before its key.
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    old = load_key_ring(here / "signing.key", SERVER)
    for name in ("signing.key", "signing.key.verify_keys.json"):
        shutil.copy2(here / name, there / name)
    new = rotate_key(there / "signing.key", SERVER, _now_ms(), grace_ms=60_000).current
    live = LiveKeyRing(here / "signing.key", old)
    shutil.copy2(there / "signing.key.verify_keys.json", here / "signing.key.verify_keys.json")
    assert (await live.refresh()).key_id == old.current.key_id
    shutil.copy2(there / "signing.key", here / "signing.key")
    assert (await live.refresh()).key_id == new.key_id
    assert live.ring.keys[old.current.key_id].expired_ts is not None
    # A ring file broken by hand (or half copied) is no reason to stop signing.
    (here / "signing.key.verify_keys.json").write_text("{not json")
    assert (await live.refresh()).key_id == new.key_id


def test_an_event_signed_by_the_old_key_after_its_expiry_fails(tmp_path: Path) -> None:
    key_path = tmp_path / "signing.key"
    old = load_key_ring(key_path, SERVER).current
    ring = rotate_key(key_path, SERVER, 2_000_000_000_000, grace_ms=1_000)
    pdu = _message(origin_server_ts=2_000_000_001_000)
    event_id, _ = seal(pdu, old)
    failure = LogVerifier(SERVER, ring.keys).check(1, event_id, pdu)
    assert failure is not None and failure.check == "signature"
    assert old.key_id in failure.reason
    assert "outside the key's validity" in failure.reason


def test_an_event_dated_before_the_new_key_existed_fails(tmp_path: Path) -> None:
    key_path = tmp_path / "signing.key"
    load_key_ring(key_path, SERVER)
    ring = rotate_key(key_path, SERVER, 2_000_000_000_000, grace_ms=0)
    pdu = _message(origin_server_ts=1_999_999_999_999)
    event_id, _ = seal(pdu, ring.current)
    failure = LogVerifier(SERVER, ring.keys).check(1, event_id, pdu)
    assert failure is not None and failure.check == "signature"
    assert "outside the key's validity" in failure.reason


def test_a_rotation_keeps_old_public_keys_and_no_old_secret(tmp_path: Path) -> None:
    key_path = tmp_path / "signing.key"
    first = load_key_ring(key_path, SERVER).current
    second = rotate_key(key_path, SERVER, 1_000, grace_ms=500).current
    third = rotate_key(key_path, SERVER, 2_000, grace_ms=0).current
    keys = read_public_keys(key_path)
    assert [(k.key_id, k.valid_from, k.expired_ts) for k in keys.values()] == sorted(
        [
            (first.key_id, 0, 1_500),
            (second.key_id, 1_000, 2_000),
            (third.key_id, 2_000, None),
        ]
    )
    assert load_key_ring(key_path, SERVER).current.key_id == third.key_id
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    secrets = [p.name for p in tmp_path.iterdir() if p.read_text().startswith("ed25519 ")]
    assert secrets == ["signing.key"]  # the old secret keys are gone


def test_a_rotation_interrupted_by_a_crash_is_finished_or_discarded(tmp_path: Path) -> None:
    key_path = tmp_path / "signing.key"
    old = load_key_ring(key_path, SERVER).current
    # Crash after the ring recorded the new key, before the new secret replaced the old.
    new = rotate_key(key_path, SERVER, 1_000, grace_ms=0).current
    next_path = key_path.with_name("signing.key.next")
    os.replace(key_path, next_path)
    key_path.write_text(f"ed25519 {old.key.version} {encode_signing_key_base64(old.key)}\n")
    assert load_key_ring(key_path, SERVER).current.key_id == new.key_id
    assert not next_path.exists()
    # Crash after a new secret was written, before the ring recorded it: no rotation.
    ring_before = ring_path(key_path).read_text()
    stray = generate_signing_key("a_stray")
    next_path.write_text(f"ed25519 a_stray {encode_signing_key_base64(stray)}\n")
    assert load_key_ring(key_path, SERVER).current.key_id == new.key_id
    assert not next_path.exists()
    assert ring_path(key_path).read_text() == ring_before


async def test_keys_rotate_and_list_commands(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"data_dir": str(tmp_path / "data")}))

    async def homeserver(*args: str) -> tuple[int, str]:
        outcome = await run_homeserver(*args, "--config", str(config), merged=True)
        return outcome.code, outcome.stdout

    code, listed = await homeserver("keys", "list")
    assert code == 2 and "no signing key" in listed  # and none was made
    load_key_ring(tmp_path / "data" / "signing.key", SERVER)  # as `run` does on first start
    code, listed = await homeserver("keys", "list")
    assert code == 0, listed
    assert "current" in listed and listed.count("ed25519:") == 1
    code, rotated = await homeserver("keys", "rotate", "--grace", "10m")
    assert code == 0, rotated
    assert "switch to it at their next write" in rotated
    assert rotated.count("ed25519:") == 3  # the new key named, then both listed
    assert "expired_ts" in rotated
    code, bad = await homeserver("keys", "rotate", "--grace", "ten minutes")
    assert code == 2 and "duration" in bad


async def test_keys_generate_makes_a_key_and_its_ring_once(tmp_path: Path) -> None:
    key_path = tmp_path / "secret" / "signing.key"
    made = await run_homeserver("keys", "generate", "--out", str(key_path), merged=True)
    assert made.code == 0, made.stdout
    assert "made a new signing key ed25519:" in made.stdout
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    ring = load_key_ring(key_path, SERVER)
    assert list(ring.keys) == [ring.current.key_id]
    again = await run_homeserver("keys", "generate", "--out", str(key_path), merged=True)
    assert again.code == 0, again.stdout
    assert f"kept the existing signing key {ring.current.key_id}" in again.stdout
    assert load_key_ring(key_path, SERVER) == ring


def _read_only(directory: Path) -> list[str]:
    """A launcher under which `directory` is read-only for the server, as a Kubernetes
    Secret volume is: a private read-only bind mount (root ignores file modes)."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        return []
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to mount the key directory read-only")
    script = 'mount --bind -o ro "$0" "$0" && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(directory)]


async def test_a_server_runs_with_its_keys_in_a_read_only_directory(
    tmp_path: Path, fresh_dsn: str
) -> None:
    keys = tmp_path / "keys"
    key_path = keys / "signing.key"
    made = await run_homeserver("keys", "generate", "--out", str(key_path), merged=True)
    assert made.code == 0, made.stdout
    key_id = load_key_ring(key_path, SERVER).current.key_id
    server = ServerProcess(
        tmp_path, fresh_dsn, launcher=_read_only(keys), signing_key_path=str(key_path)
    )
    try:
        server.wait_ready()
        async with aiohttp.ClientSession(server.base_url) as http:
            alice = await register(http, server.base_url, "alice")
            token = alice["access_token"]
            room = (await call(http, "POST", f"{V3}/createRoom", token, {}))["room_id"]
            await call(
                http, "PUT", f"{V3}/rooms/{room}/send/m.room.message/t1", token, {"body": "hi"}
            )
            published = await call(http, "GET", "/_matrix/key/v2/server")
            assert list(published["verify_keys"]) == [key_id]
    finally:
        assert server.stop() == 0
    assert sorted(path.name for path in keys.iterdir()) == [
        "signing.key",
        "signing.key.lock",  # from `keys generate`, before the directory was made read-only
        "signing.key.verify_keys.json",
    ]
    failure, _ = await _verify(fresh_dsn, key_path)
    assert failure is None


async def test_a_read_only_key_directory_without_a_key_stops_the_server_saying_how_to_fix_it(
    tmp_path: Path, fresh_dsn: str
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    server = ServerProcess(
        tmp_path,
        fresh_dsn,
        launcher=_read_only(keys),
        signing_key_path=str(keys / "signing.key"),
    )
    try:
        with pytest.raises(RuntimeError, match="homeserver keys generate"):
            server.wait_ready()
    finally:
        server.stop()
    assert list(keys.iterdir()) == []
    assert "Traceback" not in server.log_path.read_text()
