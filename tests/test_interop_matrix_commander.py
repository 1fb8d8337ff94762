"""Interop: matrix-commander (PyPI, pinned), unmodified: it logs in, sends and receives.

matrix-commander pins packages of its own (and pulls PyPI's `asyncio`, `argparse`,
`uuid` and `datetime` backports), so it lives in a virtualenv of its own, which the
test makes on first use under .venv/matrix-commander and reuses after. Its login
starts with `GET /_matrix/client/r0/login`: the r0 prefix must answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.matrix import MatrixClient

VERSION = "8.0.6"
VENV = Path(__file__).resolve().parent.parent / ".venv" / "matrix-commander"
INSTALLED = VENV / f".installed-{VERSION}"
COMMAND = VENV / "bin" / "matrix-commander"
RUN_SECONDS = 40


@pytest.fixture(scope="session")
def commander() -> Path:
    """The matrix-commander executable, installed into its own virtualenv once."""
    if not INSTALLED.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=120)
            subprocess.run(
                [str(VENV / "bin" / "pip"), "install", "--quiet", f"matrix-commander=={VERSION}"],
                check=True,
                timeout=600,
                capture_output=True,
            )
        except (subprocess.SubprocessError, OSError) as error:
            if os.environ.get("CI"):
                pytest.fail(f"cannot install matrix-commander {VERSION}: {error}")
            pytest.skip(f"cannot install matrix-commander {VERSION}: {error}")
        INSTALLED.touch()
    return COMMAND


async def _run(command: Path, *args: str, cwd: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        str(command),
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "HOME": str(cwd)},
    )
    try:
        async with asyncio.timeout(RUN_SECONDS):
            output, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
        pytest.fail(f"matrix-commander {args} did not finish:\n{output.decode()[-3000:]}")
    text = output.decode(errors="replace")
    assert process.returncode == 0, f"matrix-commander {args} -> {process.returncode}\n{text}"
    return text


@pytest.mark.timeout(900)
async def test_matrix_commander_logs_in_sends_and_receives(
    hs: MatrixClient, commander: Path, tmp_path: Path
) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat", name="commander")
    await hs.join(bob, room)
    files = ["-c", str(tmp_path / "credentials.json"), "-s", str(tmp_path / "store")]

    await _run(
        commander,
        "--login",
        "password",
        "--homeserver",
        hs.base_url,
        "--user-login",
        bob.user_id,
        "--password",
        bob.password,
        "--device",
        "commander",
        "--room-default",
        room,
        *files,
        cwd=tmp_path,
    )
    credentials: dict[str, Any] = json.loads((tmp_path / "credentials.json").read_text())
    assert credentials["user_id"] == bob.user_id

    await _run(commander, *files, "-m", "hello from matrix-commander", cwd=tmp_path)
    messages = await hs.ok("GET", f"rooms/{room}/messages?dir=b&limit=5", user=alice)
    sent = [
        e for e in messages["chunk"] if e["sender"] == bob.user_id and e["type"] == "m.room.message"
    ]
    assert sent and sent[0]["content"]["body"] == "hello from matrix-commander"

    await hs.send(alice, room, {"msgtype": "m.text", "body": "hello back from alice"})
    received = await _run(commander, *files, "--listen", "once", "-o", "JSON", cwd=tmp_path)
    events = [json.loads(line) for line in received.splitlines() if line.startswith("{")]
    bodies = [event.get("source", {}).get("content", {}).get("body") for event in events]
    assert "hello back from alice" in bodies, received[-3000:]
