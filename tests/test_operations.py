"""What an operator sees: health, metrics, request IDs and the published signing key."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest
from signedjson.key import decode_verify_key_bytes
from signedjson.sign import verify_signed_json
from unpaddedbase64 import decode_base64

from tests.conftest import AppFactory
from tests.matrix import V3, MatrixClient
from tests.processes import ServerProcess, free_port


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
