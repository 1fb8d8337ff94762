"""What an operator sees: health, metrics, request IDs and the published signing key."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from signedjson.key import decode_verify_key_bytes
from signedjson.sign import verify_signed_json
from unpaddedbase64 import decode_base64

from tests.conftest import AppFactory
from tests.matrix import V3, MatrixClient
from tests.processes import ServerProcess, free_port, register


@pytest.fixture
async def hs_with_metrics(start_app: AppFactory) -> tuple[MatrixClient, str]:
    """A server with its metrics listener on; the listener's /metrics URL."""
    port = free_port()
    hs = await start_app(metrics={"enabled": True, "port": port})
    return hs, f"http://127.0.0.1:{port}/metrics"


async def test_health_reports_ok_with_the_database_reachable(hs: MatrixClient) -> None:
    body = await hs.ok("GET", "/health")
    assert body["status"] == "ok"
    assert body["database"] == "ok"


async def _metrics(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        return await response.text()


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the first sample of `name` whose labels include `labels`."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(match.group(3))
    return None


async def test_client_port_does_not_serve_metrics(hs: MatrixClient) -> None:
    reply = await hs.request("GET", "/metrics")
    assert reply.status == 404
    assert reply.errcode == "M_UNRECOGNIZED"


async def test_client_port_does_not_serve_metrics_with_the_listener_on(
    hs_with_metrics: tuple[MatrixClient, str],
) -> None:
    hs, url = hs_with_metrics
    assert (await hs.request("GET", "/metrics")).status == 404
    assert "homeserver_http_requests_total" in await _metrics(url)


async def test_metrics_count_requests_by_endpoint_and_appended_events(
    hs_with_metrics: tuple[MatrixClient, str],
) -> None:
    hs, url = hs_with_metrics
    alice = await hs.register()
    room = await hs.create_room(alice)
    for _ in range(3):
        await hs.send(alice, room)
    await hs.request("GET", "account/whoami")

    text = await _metrics(url)
    send = V3.rstrip("/") + "/rooms/{room_id}/send/{event_type}/{txn_id}"
    assert _sample(text, "homeserver_http_requests_total", endpoint=send, method="PUT") == 3
    assert (
        _sample(
            text,
            "homeserver_http_requests_total",
            endpoint=V3 + "account/whoami",
            method="GET",
            status="401",
        )
        == 1
    )
    appended = _sample(text, "homeserver_events_appended_total")
    assert appended is not None and appended >= 3 + 5  # the messages and the room's creation
    batches = _sample(text, "homeserver_append_batch_events_count")
    assert batches is not None and batches >= 1
    assert "homeserver_http_request_seconds_bucket" in text


async def test_metrics_label_unknown_paths_as_unmatched(
    hs_with_metrics: tuple[MatrixClient, str],
) -> None:
    hs, url = hs_with_metrics
    await hs.request("GET", "/no/such/path/" + "x" * 20)
    text = await _metrics(url)
    assert _sample(text, "homeserver_http_requests_total", endpoint="unmatched", status="404")
    assert "/no/such/path" not in text


async def test_every_response_carries_a_request_id(hs: MatrixClient) -> None:
    seen = set()
    for method, path in [
        ("GET", "/_matrix/client/versions"),
        ("GET", V3 + "account/whoami"),
        ("GET", "/no/such/path"),
        ("POST", V3 + "login"),
        ("OPTIONS", V3 + "login"),
        ("GET", "/health"),
    ]:
        async with hs.http.request(method, path) as response:
            request_id = response.headers.get("X-Request-ID")
            assert request_id, (method, path)
            seen.add(request_id)
    assert len(seen) == 6


async def test_a_given_request_id_is_echoed(hs: MatrixClient) -> None:
    for path in ["/_matrix/client/versions", V3 + "account/whoami"]:
        headers = {"X-Request-ID": "trace-1234"}
        async with hs.http.get(path, headers=headers) as response:
            assert response.headers["X-Request-ID"] == "trace-1234"


async def test_an_unfit_request_id_is_replaced_by_one_of_ours(hs: MatrixClient) -> None:
    for offered in ["x" * 129, "two words", 'quote"d', "semi;colon", "ünïcode"]:
        async with hs.http.get(
            "/_matrix/client/versions", headers={"X-Request-ID": offered}
        ) as response:
            given = response.headers["X-Request-ID"]
            assert given != offered
            assert re.fullmatch(r"[0-9a-f]{16}", given), given


async def test_the_sync_stream_upgrade_carries_the_request_id(hs: MatrixClient) -> None:
    alice = await hs.register()
    ws = await hs.http.ws_connect(
        "/_linkchat/v1/sync/stream",
        headers={"Authorization": f"Bearer {alice.token}", "X-Request-ID": "stream-7"},
    )
    try:
        assert ws._response.headers["X-Request-ID"] == "stream-7"
    finally:
        await ws.close()


def _log_entries(path: Path) -> list[dict[str, Any]]:
    entries = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict):
                entries.append(entry)
    return entries


async def test_log_lines_a_request_causes_carry_its_id(tmp_path: Path, fresh_dsn: str) -> None:
    """An operator who has a failing request's ID (from the client, or the proxy that
    set it) finds every line it caused: here a media file lost from the disk."""
    media = tmp_path / "media"
    server = ServerProcess(
        tmp_path,
        fresh_dsn,
        logging={"level": "DEBUG", "format": "json"},
        media={"store_path": str(media)},
    )
    try:
        server.wait_ready()
        async with aiohttp.ClientSession(server.base_url) as http:
            alice = await register(http, server.base_url, "alice")
            auth = {"Authorization": f"Bearer {alice['access_token']}"}
            async with http.post(
                "/_matrix/media/v3/upload", data=b"lost bytes", headers=auth
            ) as reply:
                mxc = (await reply.json())["content_uri"]
            media_id = mxc.rpartition("/")[2]
            [stored] = [path for path in media.rglob(media_id) if path.is_file()]
            stored.unlink()
            async with http.get(
                f"/_matrix/client/v1/media/download/localhost/{media_id}",
                headers={**auth, "X-Request-ID": "lost-file-42"},
            ) as reply:
                assert reply.status == 404
                assert reply.headers["X-Request-ID"] == "lost-file-42"
    finally:
        assert server.stop() == 0
    lines = [e for e in _log_entries(server.log_path) if e.get("request_id") == "lost-file-42"]
    messages = [entry["message"] for entry in lines]
    assert any(media_id in message and "missing" in message for message in messages), messages
    [request_line] = [entry for entry in lines if entry.get("status") == 404]
    assert request_line["method"] == "GET"
    assert request_line["path"].endswith(media_id)


async def test_metrics_show_connections_held_and_the_wake_ups_they_get(
    hs_with_metrics: tuple[MatrixClient, str],
) -> None:
    hs, url = hs_with_metrics
    alice = await hs.register()
    room = await hs.create_room(alice)
    since = (await hs.sync(alice))["next_batch"]

    async def sampled(name: str, **labels: str) -> float:
        return _sample(await _metrics(url), name, **labels) or 0.0

    wakeups_before = await sampled("homeserver_sync_wakeups_total")
    polls = [asyncio.create_task(hs.sync(alice, since=since, wait_ms=30_000)) for _ in range(3)]
    ws = await hs.http.ws_connect(
        "/_linkchat/v1/sync/stream", headers={"Authorization": f"Bearer {alice.token}"}
    )
    await ws.send_str(json.dumps({"since": since}))
    try:

        async def all_held() -> bool:
            text = await _metrics(url)
            return (
                _sample(text, "homeserver_connections_held", kind="long_poll") == 3
                and _sample(text, "homeserver_connections_held", kind="stream") == 1
                and (_sample(text, "homeserver_sync_waiting") or 0) >= 4
                and (_sample(text, "homeserver_http_requests_in_flight") or 0) >= 4
            )

        await hs.eventually(all_held)
        await hs.send(alice, room)
        await asyncio.gather(*polls)
        frame = await asyncio.wait_for(ws.receive(), 30)
        assert frame.type == aiohttp.WSMsgType.TEXT
    finally:
        await ws.close()

    async def released() -> bool:
        text = await _metrics(url)
        return (
            _sample(text, "homeserver_connections_held", kind="long_poll") == 0
            and _sample(text, "homeserver_connections_held", kind="stream") == 0
        )

    await hs.eventually(released)
    text = await _metrics(url)
    assert (_sample(text, "homeserver_sync_wakeups_total") or 0) >= wakeups_before + 4
    built = sum(
        _sample(text, "homeserver_syncs_total", source=source) or 0
        for source in ("memory", "database")
    )
    assert built >= 5
    counted = sum(
        _sample(text, "homeserver_sync_unread_counts_total", source=source) or 0
        for source in ("memory", "database")
    )
    assert counted >= 5  # the room's count in each sync built
    assert _sample(text, "homeserver_sync_catchups_total") is not None


async def test_server_key_is_published_and_self_signed(hs: MatrixClient) -> None:
    body = await hs.ok("GET", "/_matrix/key/v2/server")
    assert body["server_name"] == "localhost"
    [(key_id, entry)] = body["verify_keys"].items()
    assert key_id.startswith("ed25519:")
    raw_key = decode_base64(entry["key"])
    assert len(raw_key) == 32
    assert body["valid_until_ts"] > 0
    verify_key = decode_verify_key_bytes(key_id, raw_key)
    verify_signed_json(body, "localhost", verify_key)  # raises if the signature is wrong
    # The same key is served again: it is the server's lasting identity.
    assert (await hs.ok("GET", "/_matrix/key/v2/server"))["verify_keys"] == body["verify_keys"]


async def test_run_serves_metrics_on_their_own_port_and_closes_it_on_shutdown(
    tmp_path: Path, fresh_dsn: str
) -> None:
    port = free_port()
    server = ServerProcess(
        tmp_path, fresh_dsn, metrics={"enabled": True, "host": "127.0.0.1", "port": port}
    )
    try:
        server.wait_ready()
        text = await _metrics(f"http://127.0.0.1:{port}/metrics")
        assert "# TYPE homeserver_events_appended_total counter" in text
        async with aiohttp.ClientSession() as http:
            async with http.get(server.base_url + "/metrics") as response:
                assert response.status == 404
    finally:
        assert server.stop() == 0
    with pytest.raises(aiohttp.ClientConnectionError):
        await _metrics(f"http://127.0.0.1:{port}/metrics")


def _open_files_limits(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open files line")


async def test_the_server_raises_its_open_files_limit_to_the_hard_limit(
    tmp_path: Path, fresh_dsn: str
) -> None:
    """Every held long-poll is a socket: the usual soft limit of 1024 would turn the
    1025th client away while the hard limit allows thousands more."""
    server = ServerProcess(
        tmp_path, fresh_dsn, launcher=["sh", "-c", 'ulimit -Sn 256 && exec "$@"', "sh"]
    )
    try:
        server.wait_ready()
        soft, hard = _open_files_limits(server.pid)
        assert soft == hard
        assert hard > 256
    finally:
        assert server.stop() == 0
    assert "open files: limit raised from 256" in server.log_path.read_text()


def _may_raise_hard_limits() -> bool:
    """Whether this process (and the server it starts) has CAP_SYS_RESOURCE."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> 24 & 1)
    return False


def _kernel_open_files_ceiling() -> int:
    return int(Path("/proc/sys/fs/nr_open").read_text())


async def test_the_server_raises_its_hard_open_files_limit_where_it_may(
    tmp_path: Path, fresh_dsn: str
) -> None:
    """With CAP_SYS_RESOURCE the server raises the hard limit to the kernel's ceiling
    itself; without it (most containers, even as root) the hard limit stays, and the
    log says why, so an operator knows to raise it where the server is started."""
    server = ServerProcess(
        tmp_path, fresh_dsn, launcher=["sh", "-c", 'ulimit -n 4096 && exec "$@"', "sh"]
    )
    try:
        server.wait_ready()
        soft, hard = _open_files_limits(server.pid)
    finally:
        assert server.stop() == 0
    log = server.log_path.read_text()
    if _may_raise_hard_limits():
        ceiling = _kernel_open_files_ceiling()
        assert (soft, hard) == (ceiling, ceiling)
        assert "hard limit raised from 4096" in log
    else:
        assert (soft, hard) == (4096, 4096)
        assert "the hard limit 4096 stays (raising it needs CAP_SYS_RESOURCE)" in log
