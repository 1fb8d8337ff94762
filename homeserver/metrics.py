"""Prometheus metrics of one server process (its own registry, so tests may build many apps)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from homeserver.events.model import Event


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "homeserver_http_requests",
            "HTTP requests by endpoint, method and status",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "homeserver_http_request_seconds",
            "HTTP request latency by endpoint",
            ["endpoint", "method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.events_appended = Counter(
            "homeserver_events_appended", "Events appended to the log", registry=self.registry
        )
        self.append_batch_size = Histogram(
            "homeserver_append_batch_events",
            "Events per group-committed append batch",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=self.registry,
        )

    def record_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request; the labelled children are looked up once per label set
        (prometheus_client's `labels` costs more than the increment itself)."""
        key = (endpoint, method, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(endpoint, method, str(status)),
                self.latency.labels(endpoint, method),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def record_batch(self, events: Sequence[Event]) -> None:
        self.events_appended.inc(len(events))
        self.append_batch_size.observe(len(events))

    def render(self) -> bytes:
        return generate_latest(self.registry)
