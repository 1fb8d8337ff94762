"""Writes deploy/grafana/linkchat.json: `python deploy/grafana/dashboard.py`.

The dashboard is this script's output: edit here, run it, commit both.
tests/test_grafana.py checks that they agree and that a running server serves
every metric drawn. Every query follows the `instance` picker, so one process
can be looked at alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "linkchat.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
PICKED = 'instance=~"$instance"'
# /sync long-polls and sync streams wait on purpose: their latency is not the server's.
NOT_SYNC = 'endpoint!~".*/sync(/stream)?"'


def rate(metric: str, by: str = "", where: str = "") -> str:
    selector = ",".join(part for part in (PICKED, where) if part)
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}{{{selector}}}[$__rate_interval]))"


def gauge(metric: str, how: str, by: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f"{how}{grouping} ({metric}{{{PICKED}}})"


def quantile(q: float, metric: str, by: str = "", where: str = "") -> str:
    return f"histogram_quantile({q}, {rate(metric, ','.join(filter(None, ['le', by])), where)})"


class Layout:
    """Panels placed left to right, row after row, on Grafana's 24-column grid."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.y = 0
        self.x = 0

    def row(self, title: str) -> None:
        self._next_line()
        self.panels.append(
            {
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def graph(
        self,
        title: str,
        description: str,
        targets: list[tuple[str, str]],
        *,
        unit: str = "short",
        width: int = 12,
        stack: bool = False,
    ) -> None:
        if self.x + width > 24:
            self._next_line()
        self.panels.append(
            {
                "type": "timeseries",
                "title": title,
                "description": description,
                "datasource": DATASOURCE,
                "gridPos": {"h": 8, "w": width, "x": self.x, "y": self.y},
                "fieldConfig": {
                    "defaults": {
                        "unit": unit,
                        "custom": {
                            "drawStyle": "line",
                            "lineWidth": 1,
                            "fillOpacity": 40 if stack else 10,
                            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                        },
                    },
                    "overrides": [],
                },
                "options": {
                    "legend": {
                        "displayMode": "table",
                        "placement": "bottom",
                        "calcs": ["mean", "max"],
                    },
                    "tooltip": {"mode": "multi", "sort": "desc"},
                },
                "targets": [
                    {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref}
                    for ref, (expr, legend) in zip("ABCDEFGH", targets, strict=False)
                ],
            }
        )
        self.x += width

    def _next_line(self) -> None:
        if self.x:
            self.y += 8
            self.x = 0


def panels() -> list[dict[str, Any]]:
    page = Layout()
    page.row("Requests")
    page.graph(
        "Requests per second by status",
        "Every HTTP request answered, by status (a long-poll counts when it answers).",
        [(rate("homeserver_http_requests_total", "status"), "{{status}}")],
        unit="reqps",
        stack=True,
    )
    page.graph(
        "Server errors (5xx) share",
        "Share of requests answered 5xx. A 503 with Retry-After is the server refusing work"
        " it cannot do now.",
        [
            (
                rate("homeserver_http_requests_total", where='status=~"5.."')
                + " / "
                + rate("homeserver_http_requests_total"),
                "5xx share",
            )
        ],
        unit="percentunit",
    )
    page.graph(
        "Busiest endpoints",
        "The ten endpoints with the most requests per second.",
        [
            (
                f"topk(10, {rate('homeserver_http_requests_total', 'endpoint, method')})",
                "{{method}} {{endpoint}}",
            )
        ],
        unit="reqps",
    )
    page.graph(
        "Requests in flight",
        "Requests being served now, per process, long-polls and sync streams included.",
        [(gauge("homeserver_http_requests_in_flight", "sum", "instance"), "{{instance}}")],
    )
    page.row("Latency")
    page.graph(
        "Latency, every endpoint but /sync",
        "Percentiles of the time to answer, leaving out /sync and the sync stream, which"
        " wait on purpose.",
        [
            (quantile(q, "homeserver_http_request_seconds_bucket", where=NOT_SYNC), f"p{n}")
            for q, n in ((0.5, 50), (0.9, 90), (0.99, 99))
        ],
        unit="s",
    )
    page.graph(
        "p99 latency by endpoint",
        "The ten slowest endpoints at the 99th percentile (/sync left out).",
        [
            (
                "topk(10, "
                + quantile(
                    0.99, "homeserver_http_request_seconds_bucket", "endpoint, method", NOT_SYNC
                )
                + ")",
                "{{method}} {{endpoint}}",
            )
        ],
        unit="s",
    )
    page.row("Sync: connections held and wake-ups")
    page.graph(
        "Connections held",
        "Long-polls waiting in GET /sync and open sync stream WebSockets, over every process.",
        [
            (gauge("homeserver_connections_held", "sum", "kind"), "{{kind}}"),
            (gauge("homeserver_sync_waiting", "sum"), "syncs waiting for a change"),
        ],
        width=8,
    )
    page.graph(
        "Sync wake-ups per second",
        "Waiting syncs woken by a committed change (one per sync woken).",
        [(rate("homeserver_sync_wakeups_total", "instance"), "{{instance}}")],
        unit="ops",
        width=8,
    )
    page.graph(
        "Syncs built, and catch-ups",
        "Syncs answered from the in-memory tail of the log or from PostgreSQL, and the tail's"
        " catch-up reads of changes other processes committed.",
        [
            (rate("homeserver_syncs_total", "source"), "built from {{source}}"),
            (rate("homeserver_sync_catchups_total"), "catch-up reads"),
            (rate("homeserver_sync_catchup_events_total"), "events caught up"),
        ],
        unit="ops",
        width=8,
    )
    page.row("The log: appends and followers")
    page.graph(
        "Events appended and batches committed",
        "Events written to the log per second, and the group-committed batches they came in.",
        [
            (rate("homeserver_events_appended_total"), "events"),
            (rate("homeserver_append_batch_events_count"), "batches"),
        ],
        unit="ops",
        width=8,
    )
    page.graph(
        "Append batch size",
        "Events per committed batch: the mean and the 99th percentile. Larger batches under"
        " load are group commit at work.",
        [
            (
                rate("homeserver_append_batch_events_sum")
                + " / "
                + rate("homeserver_append_batch_events_count"),
                "mean",
            ),
            (quantile(0.99, "homeserver_append_batch_events_bucket"), "p99"),
        ],
        width=8,
    )
    page.graph(
        "Follower lag",
        "How far each durable follower (push, command expiry...) is behind the log: the age of"
        " the oldest event it read but has not handled. Only the lease holder reports it.",
        [(gauge("homeserver_follower_lag_seconds", "max", "follower"), "{{follower}}")],
        unit="s",
        width=8,
    )
    page.graph(
        "Follower lag in events",
        "Events in the log after each follower's position.",
        [(gauge("homeserver_follower_lag_events", "max", "follower"), "{{follower}}")],
    )
    page.graph(
        "Follower leases",
        "Which process runs each follower (1: holds its lease). Exactly one per follower.",
        [(gauge("homeserver_follower_leading", "sum", "follower"), "{{follower}}")],
    )
    page.row("Processes: bus and degradation")
    page.graph(
        "Bus connected",
        "1 while a process is connected to the bus between the server processes"
        " (PostgreSQL LISTEN/NOTIFY or Redis pub/sub).",
        [(gauge("homeserver_bus_connected", "min", "instance"), "{{instance}}")],
        width=8,
    )
    page.graph(
        "Processes serving degraded",
        "Processes whose bus is down: they find other processes' commits by reading the log"
        " each second, and typing and presence from elsewhere wake nobody there.",
        [(gauge("homeserver_degraded", "sum"), "degraded")],
        width=8,
    )
    page.graph(
        "Bus messages dropped",
        "Messages that could not be published while the bus was down, per second.",
        [(rate("homeserver_bus_messages_dropped_total", "instance"), "{{instance}}")],
        unit="ops",
        width=8,
    )
    for number, panel in enumerate(page.panels, start=1):
        panel["id"] = number
    return page.panels


def dashboard() -> dict[str, Any]:
    return {
        "title": "LinkChat homeserver",
        "uid": "linkchat-homeserver",
        "description": "Requests, latency, held connections, sync wake-ups, appends, followers"
        " and the bus of the LinkChat homeserver (docs/deployment.md).",
        "tags": ["linkchat", "matrix"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-3h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                    "options": [],
                },
                {
                    "name": "instance",
                    "label": "Process",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": {
                        "query": "label_values(homeserver_http_requests_in_flight, instance)",
                        "refId": "instance",
                    },
                    "definition": "label_values(homeserver_http_requests_in_flight, instance)",
                    "multi": True,
                    "includeAll": True,
                    "allValue": ".*",
                    "current": {},
                    "hide": 0,
                    "refresh": 2,
                    "regex": "",
                    "sort": 1,
                    "options": [],
                },
            ]
        },
        "annotations": {"list": []},
        "links": [],
        "panels": panels(),
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
