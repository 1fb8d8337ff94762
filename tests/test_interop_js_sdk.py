"""Interop: the real matrix-js-sdk (npm, pinned in tests/js/package.json) against the server.

tests/js/interop.mjs runs the SDK's own start-up and sync loop with crypto off;
this test registers both users over HTTP, plays the other side (Bob joins the
room the SDK created and sends a message) and reads the script's "INTEROP" JSON
lines. Every HTTP request the SDK made is reported back, so a failure names the
exact request and the server's answer.

Node and the SDK come from `npm ci --prefix tests/js`. Without them the test
skips locally, but fails under CI (CI set), where .ci/run installs them.
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
SCRIPT = JS_DIR / "interop.mjs"
SDK = JS_DIR / "node_modules" / "matrix-js-sdk" / "package.json"
PINNED = json.loads((JS_DIR / "package.json").read_text())["dependencies"]["matrix-js-sdk"]
SCRIPT_TIMEOUT_MS = 30_000
STEP_SECONDS = 25.0
PREFIX = "INTEROP "

# What the SDK asks for while starting, before the first /sync returns.
START_UP = [
    ("GET", "/_matrix/client/versions"),
    ("GET", "/_matrix/client/v3/pushrules/"),
    ("POST", "/_matrix/client/v3/user/{user_id}/filter"),
    ("GET", "/_matrix/client/v3/sync"),
]
# Asked for at start-up too, but not awaited before PREPARED: on a busy machine the
# SDK can reach PREPARED first, so it is checked once the script has finished.
CAPABILITIES = ("GET", "/_matrix/client/v3/capabilities")


def _node_or_skip() -> str:
    """The node binary; skips (locally) or fails (CI) when node or the SDK is missing."""
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        missing = "node/npm are not installed"
    elif not SDK.exists():
        missing = "tests/js/node_modules is missing: run `npm ci --prefix tests/js`"
    else:
        return node
    if os.environ.get("CI"):
        pytest.fail(f"matrix-js-sdk interop cannot run under CI: {missing}")
    pytest.skip(missing)


@dataclass
class Script:
    """The running node script: its protocol lines, and everything else it printed."""

    process: asyncio.subprocess.Process
    requests: list[dict[str, Any]] = field(default_factory=list)
    chatter: list[str] = field(default_factory=list)

    def transcript(self) -> str:
        sent = "\n  ".join(
            f"{r['method']} {r['path']} -> {r['status']} {r.get('body') or ''}".rstrip()
            for r in self.requests
        )
        other = "\n  ".join(self.chatter[-20:])
        return f"SDK requests:\n  {sent}\nother output (last 20 lines):\n  {other}"

    async def next_step(self, wanted: str) -> dict[str, Any]:
        """Reads lines until the step `wanted`; fails on an error, a timeout or exit."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + STEP_SECONDS
        while True:
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    raw = await self.process.stdout.readline()
            except TimeoutError:
                pytest.fail(f"no '{wanted}' from the SDK in {STEP_SECONDS}s\n{self.transcript()}")
            if not raw:
                await self.process.wait()
                pytest.fail(
                    f"node exited ({self.process.returncode}) before '{wanted}'\n"
                    f"{self.transcript()}"
                )
            text = raw.decode(errors="replace").rstrip("\n")
            if not text.startswith(PREFIX):
                self.chatter.append(text)
                continue
            line: dict[str, Any] = json.loads(text.removeprefix(PREFIX))
            step = line["step"]
            if step == "request":
                self.requests.append(line)
            elif step == wanted:
                return line
            elif step in ("error", "timeout"):
                pytest.fail(f"SDK {step} while waiting for '{wanted}': {line}\n{self.transcript()}")


@pytest.fixture
async def js_user(hs: MatrixClient) -> tuple[User, User]:
    return await hs.register(), await hs.register()


@pytest.fixture
async def script(hs: MatrixClient, js_user: tuple[User, User]) -> AsyncIterator[Script]:
    node = _node_or_skip()
    alice, bob = js_user
    env = {
        **os.environ,
        "HS_BASE_URL": hs.base_url,
        "HS_USER_ID": alice.user_id,
        "HS_ACCESS_TOKEN": alice.token,
        "HS_DEVICE_ID": alice.device_id,
        "HS_PEER_ID": bob.user_id,
        "HS_TIMEOUT_MS": str(SCRIPT_TIMEOUT_MS),
    }
    process = await asyncio.create_subprocess_exec(
        node,
        str(SCRIPT),
        cwd=JS_DIR,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    running = Script(process)
    try:
        yield running
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


def test_installed_sdk_is_the_pinned_version() -> None:
    _node_or_skip()
    assert json.loads(SDK.read_text())["version"] == PINNED


async def test_js_sdk_starts_creates_a_room_and_receives_a_message_from_another_user(
    hs: MatrixClient, js_user: tuple[User, User], script: Script
) -> None:
    alice, bob = js_user
    await script.next_step("prepared")
    called = {(r["method"], r["path"]) for r in script.requests}
    for method, path in START_UP:
        path = path.format(user_id=alice.user_id)
        assert (method, path) in called, f"SDK never called {method} {path}\n{script.transcript()}"

    # The SDK merges the served rules with the ones it knows: it warns "Missing" when
    # ours are out of the spec's order, and "Adding" for each spec rule we left out
    # (it also adds two unstable org.matrix.* rules Synapse serves; those are fine).
    merged = [line for line in script.chatter if "default global" in line]
    assert not [line for line in merged if "Missing" in line], merged
    assert not [line for line in merged if "push rule .m.rule." in line], merged

    room_id = (await script.next_step("room_created"))["room_id"]
    assert room_id.startswith("!")
    await hs.join(bob, room_id)
    sent = await hs.send(bob, room_id, {"msgtype": "m.text", "body": "hello from python"})

    message = await script.next_step("message")
    assert message["room_id"] == room_id
    assert message["event_id"] == sent
    assert message["sender"] == bob.user_id
    assert message["body"] == "hello from python"
    assert message["room_name"] == "js-sdk interop"
    assert message["members"] == sorted([alice.user_id, bob.user_id])

    reply_id = (await script.next_step("replied"))["event_id"]
    await script.next_step("done")
    reply = await hs.ok("GET", f"rooms/{room_id}/event/{reply_id}", user=bob)
    assert reply["sender"] == alice.user_id
    assert reply["content"]["body"] == "echo: hello from python"

    assert await script.process.wait() == 0
    called = {(r["method"], r["path"]) for r in script.requests}
    assert CAPABILITIES in called, f"SDK never called GET /capabilities\n{script.transcript()}"
    failed = [r for r in script.requests if r["status"] >= 400]
    assert failed == [], f"the SDK got errors\n{script.transcript()}"
