"""Interop: matrix-js-sdk 37.5 with its Rust crypto (initRustCrypto), unmodified, end to end.

Each device is a node process of its own running tests/js/e2ee.mjs (the SDK's Rust
crypto keeps one store per process: fake-indexeddb in memory), driven line by line:
two users in an encrypted room exchange messages both ways and each decrypts the
other's; both bootstrap cross-signing and see each other's identity; the receiver
backs its room keys up, and a second device of theirs, logged in later, reads the
history through the key backup.

Node and the SDK come from `npm ci --prefix tests/js`. Without them the test skips
locally, but fails under CI (CI set), where .ci/run installs them.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.matrix import MatrixClient, User

JS_DIR = Path(__file__).resolve().parent / "js"
SCRIPT = JS_DIR / "e2ee.mjs"
SDK = JS_DIR / "node_modules" / "matrix-js-sdk" / "package.json"
INDEXEDDB = JS_DIR / "node_modules" / "fake-indexeddb" / "package.json"
PINNED = json.loads((JS_DIR / "package.json").read_text())["dependencies"]
STEP_SECONDS = 45.0
PREFIX = "INTEROP "


def _node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        missing = "node is not installed"
    elif not SDK.exists() or not INDEXEDDB.exists():
        missing = "tests/js/node_modules is missing: run `npm ci --prefix tests/js`"
    else:
        return node
    if os.environ.get("CI"):
        pytest.fail(f"matrix-js-sdk E2EE interop cannot run under CI: {missing}")
    pytest.skip(missing)


@dataclass
class JsDevice:
    """One SDK device in its node process."""

    name: str
    process: asyncio.subprocess.Process
    requests: list[dict[str, Any]] = field(default_factory=list)
    chatter: list[str] = field(default_factory=list)

    def transcript(self) -> str:
        failed = "\n  ".join(
            f"{r['method']} {r['path']} -> {r['status']} {r.get('body') or ''}".rstrip()
            for r in self.requests
            if r["status"] >= 400 or "/keys" in r["path"]
        )
        other = "\n  ".join(self.chatter[-30:])
        return (
            f"[{self.name}] {len(self.requests)} requests; failed and key ones:\n  {failed}\n"
            f"other output (last 30 lines):\n  {other}"
        )

    async def run(self, cmd: str, **args: Any) -> dict[str, Any]:
        """Send one command and read lines until its answer."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write((json.dumps({"cmd": cmd, **args}) + "\n").encode())
        await self.process.stdin.drain()
        deadline = time.monotonic() + STEP_SECONDS
        while True:
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    raw = await self.process.stdout.readline()
            except TimeoutError:
                pytest.fail(f"no answer to {cmd!r} in {STEP_SECONDS}s\n{self.transcript()}")
            if not raw:
                await self.process.wait()
                pytest.fail(
                    f"[{self.name}] node exited before answering {cmd!r}\n{self.transcript()}"
                )
            text = raw.decode(errors="replace").rstrip("\n")
            if not text.startswith(PREFIX):
                self.chatter.append(text)
                continue
            line: dict[str, Any] = json.loads(text.removeprefix(PREFIX))
            if line["step"] == "request":
                self.requests.append(line)
            elif line["step"] == cmd:
                return line
            elif line["step"] == "error":
                pytest.fail(f"[{self.name}] {cmd!r} failed: {line['error']}\n{self.transcript()}")


@pytest.fixture
async def devices(hs: MatrixClient) -> AsyncIterator[Any]:
    node = _node_or_skip()
    started: list[JsDevice] = []

    async def device(name: str, user: User) -> JsDevice:
        env = {
            **os.environ,
            "HS_BASE_URL": hs.base_url,
            "HS_USER_ID": user.user_id,
            "HS_PASSWORD": user.password,
            "HS_DEVICE_NAME": name,
        }
        process = await asyncio.create_subprocess_exec(
            node,
            str(SCRIPT),
            cwd=JS_DIR,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            limit=2**22,
        )
        running = JsDevice(name, process)
        started.append(running)
        await running.run("start")
        return running

    yield device
    for running in started:
        if running.process.returncode is None:
            running.process.kill()
        await running.process.wait()


def test_installed_packages_are_the_pinned_versions() -> None:
    _node_or_skip()
    assert json.loads(SDK.read_text())["version"] == PINNED["matrix-js-sdk"] == "37.5.0"
    assert json.loads(INDEXEDDB.read_text())["version"] == PINNED["fake-indexeddb"]


async def test_js_sdk_rust_crypto_encrypts_both_ways_cross_signs_and_restores_from_backup(
    hs: MatrixClient, devices: Any
) -> None:
    alice, bob = await hs.register(), await hs.register()
    alice_phone = await devices("alice phone", alice)
    bob_phone = await devices("bob phone", bob)

    # Cross-signing, and key backup behind secret storage, as Element sets them up.
    for device in (alice_phone, bob_phone):
        signing = await device.run("bootstrap_cross_signing")
        assert signing["ready"] is True, signing
    backup = await bob_phone.run("bootstrap_backup")
    assert backup["recovery_key"] and backup["version"]

    room_id = (await alice_phone.run("create_encrypted_room", name="secret", invite=[bob.user_id]))[
        "room_id"
    ]
    await bob_phone.run("join", room_id=room_id)
    assert (await alice_phone.run("wait_member", room_id=room_id, user_id=bob.user_id))["encrypted"]

    sent = await alice_phone.run("send", room_id=room_id, body="hello bob, secretly")
    # What the server holds is ciphertext only.
    assert sent["type_on_server"] == "m.room.encrypted"
    assert "hello" not in json.dumps(sent["content_on_server"])
    got = await bob_phone.run(
        "wait_message", room_id=room_id, sender=alice.user_id, body="hello bob, secretly"
    )
    assert got["event_id"] == sent["event_id"]

    reply = await bob_phone.run("send", room_id=room_id, body="hello alice, secretly")
    assert reply["type_on_server"] == "m.room.encrypted"
    back = await alice_phone.run(
        "wait_message", room_id=room_id, sender=bob.user_id, body="hello alice, secretly"
    )
    assert back["event_id"] == reply["event_id"]

    # Each sees the other's cross-signing identity and devices.
    seen_by_alice = await alice_phone.run("identity", user_id=bob.user_id)
    assert seen_by_alice["has_cross_signing_keys"] is True
    seen_by_bob = await bob_phone.run("identity", user_id=alice.user_id)
    assert seen_by_bob["has_cross_signing_keys"] is True
    assert alice_phone.name and seen_by_bob["devices"]

    # Bob's room keys reach the backup; a device of his logged in later reads the history.
    await bob_phone.run("wait_backed_up", count=1)
    bob_laptop = await devices("bob laptop", bob)
    restored = await bob_laptop.run("restore_backup", recovery_key=backup["recovery_key"])
    assert restored["imported"] >= 1, restored
    history = await bob_laptop.run("read_history", room_id=room_id, event_id=sent["event_id"])
    assert (history["type"], history["body"], history["failure"]) == (
        "m.room.message",
        "hello bob, secretly",
        False,
    )

    for device in (alice_phone, bob_phone, bob_laptop):
        await device.run("stop")
        errors = [
            r
            for r in device.requests
            if r["status"] >= 500
            or (r["status"] == 404 and "M_UNRECOGNIZED" in (r.get("body") or ""))
        ]
        assert errors == [], device.transcript()
