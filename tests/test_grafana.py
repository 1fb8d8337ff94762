"""The Grafana dashboard (deploy/grafana/linkchat.json) draws only metrics a server serves."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import aiohttp

from tests.processes import V3, ServerProcess, call, register

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "linkchat.json"


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def _expressions(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in _panels(dashboard) for target in panel.get("targets", [])]


def _named(expressions: list[str]) -> set[str]:
    return {name for expr in expressions for name in re.findall(r"\bhomeserver_[a-z_]+", expr)}


def test_the_dashboard_is_what_its_script_writes() -> None:
    spec = importlib.util.spec_from_file_location("dashboard", DASHBOARD.with_name("dashboard.py"))
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert DASHBOARD.read_text() == script.render(), "run python deploy/grafana/dashboard.py"


def test_the_dashboard_is_a_grafana_dashboard_of_distinct_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = _panels(dashboard)
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    drawn = [panel for panel in panels if panel["type"] != "row"]
    assert drawn and all(panel["targets"] for panel in drawn)
    for panel in drawn:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            # Every query follows the process picker, so one pod can be looked at alone.
            assert 'instance=~"$instance"' in target["expr"], (panel["title"], target["expr"])
    names = {variable["name"] for variable in dashboard["templating"]["list"]}
    assert names == {"datasource", "instance"}


def test_the_dashboard_draws_what_the_issue_asks_for() -> None:
    named = _named(_expressions(json.loads(DASHBOARD.read_text())))
    for wanted in (
        "homeserver_http_requests_total",  # requests
        "homeserver_http_request_seconds_bucket",  # latency
        "homeserver_append_batch_events_count",  # append batches
        "homeserver_follower_lag_seconds",  # follower lag
        "homeserver_connections_held",  # connections held
        "homeserver_sync_wakeups_total",  # sync wake-ups
    ):
        assert wanted in named


async def test_every_metric_the_dashboard_draws_is_served(tmp_path: Path, fresh_dsn: str) -> None:
    named = _named(_expressions(json.loads(DASHBOARD.read_text())))
    server = ServerProcess(tmp_path, fresh_dsn)
    try:
        server.wait_ready()
        async with aiohttp.ClientSession(server.base_url) as http:
            # Traffic, so that every labelled family has a sample.
            alice = await register(http, server.base_url, "alice")
            token = alice["access_token"]
            room = (await call(http, "POST", f"{V3}/createRoom", token, {}))["room_id"]
            since = (await call(http, "GET", f"{V3}/sync", token))["next_batch"]
            await call(
                http, "PUT", f"{V3}/rooms/{room}/send/m.room.message/t1", token, {"body": "hi"}
            )
            await call(http, "GET", f"{V3}/sync?since={since}&timeout=10000", token)
            served: set[str] = set()
            for _ in range(100):
                async with http.get(server.metrics_url) as reply:
                    text = await reply.text()
                served = {line.split("{")[0].split(" ")[0] for line in text.splitlines()}
                if named <= served:
                    break
                # Follower lag is reported once the process holds the followers' leases.
                await asyncio.sleep(0.2)
    finally:
        assert server.stop() == 0
    assert named - served == set()
