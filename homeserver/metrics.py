"""Prometheus metrics of one server process (its own registry, so tests may build many apps)."""

from __future__ import annotations

import contextlib
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from homeserver.events.model import Event

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_BUCKET_LABELS = [*map(floatToGoString, LATENCY_BUCKETS), "+Inf"]


class _Endpoint:
    """Counts for one (endpoint, method): answers by status, and latencies by bucket."""

    __slots__ = ("buckets", "seconds", "statuses")

    def __init__(self) -> None:
        self.statuses: dict[int, int] = {}
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.seconds = 0.0


class RequestMetrics(Collector):
    """HTTP request counts and latencies as plain integers, turned into Prometheus
    families only when scraped: recording one request is a few dict and list
    updates, where prometheus_client's labelled metrics take a lock and walk the
    buckets on every update, for every request the server answers."""

    def __init__(self) -> None:
        self._endpoints: dict[tuple[str, str], _Endpoint] = {}
        self.in_flight = 0  # requests being served now, long-polls included

    def record(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        stats = self._endpoints.get((endpoint, method))
        if stats is None:
            stats = self._endpoints[(endpoint, method)] = _Endpoint()
        stats.statuses[status] = stats.statuses.get(status, 0) + 1
        stats.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        stats.seconds += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "homeserver_http_requests",
            "HTTP requests by endpoint, method and status",
            labels=["endpoint", "method", "status"],
        )
        latency = HistogramMetricFamily(
            "homeserver_http_request_seconds",
            "HTTP request latency by endpoint",
            labels=["endpoint", "method"],
        )
        for (endpoint, method), stats in list(self._endpoints.items()):
            for status, count in list(stats.statuses.items()):
                requests.add_metric([endpoint, method, str(status)], count)
            cumulative, buckets = 0, []
            for bound, count in zip(_BUCKET_LABELS, stats.buckets, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric([endpoint, method], buckets, stats.seconds)
        yield requests
        yield latency
        yield GaugeMetricFamily(
            "homeserver_http_requests_in_flight",
            "HTTP requests being served now, long-polls and open streams included",
            value=self.in_flight,
        )


class FollowerState(Protocol):
    """What the metrics read of a follower (log/followers.py FollowerStatus)."""

    @property
    def name(self) -> str: ...
    @property
    def leading(self) -> bool: ...
    @property
    def position(self) -> int: ...
    @property
    def lag_events(self) -> int: ...
    def lag_seconds(self, now: float) -> float: ...


class FollowerMetrics(Collector):
    """Each follower's lease, position and lag. A follower runs in one process at a
    time: only that process reports its position and lag."""

    def __init__(self, source: Callable[[], Iterable[FollowerState]]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        labels = ["follower"]
        leading = GaugeMetricFamily(
            "homeserver_follower_leading",
            "1 when this process holds the follower's lease and runs it",
            labels=labels,
        )
        position = GaugeMetricFamily(
            "homeserver_follower_position",
            "Stream position up to which the follower handled the log",
            labels=labels,
        )
        lag_events = GaugeMetricFamily(
            "homeserver_follower_lag_events",
            "Events in the log after the follower's position, at its last read",
            labels=labels,
        )
        lag_seconds = GaugeMetricFamily(
            "homeserver_follower_lag_seconds",
            "Age of the oldest event the follower read but has not handled yet",
            labels=labels,
        )
        now = time.time()
        for follower in self._source():
            leading.add_metric([follower.name], 1 if follower.leading else 0)
            if follower.leading:
                position.add_metric([follower.name], follower.position)
                lag_events.add_metric([follower.name], follower.lag_events)
                lag_seconds.add_metric([follower.name], follower.lag_seconds(now))
        yield leading
        yield position
        yield lag_events
        yield lag_seconds


class BusState(Protocol):
    @property
    def connected(self) -> bool: ...

    @property
    def dropped(self) -> int: ...


class BusMetrics(Collector):
    """Whether the bus between processes is up, and the hints it dropped while not."""

    def __init__(self, bus: BusState) -> None:
        self._bus = bus

    def collect(self) -> Iterator[Metric]:
        connected = 1 if self._bus.connected else 0
        yield GaugeMetricFamily(
            "homeserver_bus_connected",
            "1 while the bus to the other server processes is connected",
            value=connected,
        )
        yield GaugeMetricFamily(
            "homeserver_degraded",
            "1 while the process serves degraded: the bus is down, so other processes'"
            " commits are found by reading the log each second, and their typing and"
            " presence changes wake nobody here",
            value=1 - connected,
        )
        yield CounterMetricFamily(
            "homeserver_bus_messages_dropped",
            "Bus messages that could not be published (the bus was down)",
            value=self._bus.dropped,
        )


# (label values, value) pairs
Samples = Iterable[tuple[Sequence[str], float]]


class Sampled(Collector):
    """One metric whose values a service keeps as plain numbers, read when scraped:
    counting a wake-up is then an integer addition on the service's own path. A
    counter is named without `_total` (the text format adds it)."""

    def __init__(
        self,
        kind: Literal["counter", "gauge"],
        name: str,
        documentation: str,
        labels: Sequence[str],
        read: Callable[[], Samples],
    ) -> None:
        self._family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
        self._name, self._documentation, self._labels = name, documentation, list(labels)
        self._read = read

    def collect(self) -> Iterator[Metric]:
        family = self._family(self._name, self._documentation, labels=self._labels)
        for values, value in self._read():
            family.add_metric(list(values), value)
        yield family


class HeldConnections:
    """Connections held open: long-polls waiting in GET /sync, and sync streams."""

    KINDS = ("long_poll", "stream")

    def __init__(self) -> None:
        self.count = dict.fromkeys(self.KINDS, 0)

    @contextlib.contextmanager
    def holding(self, kind: str) -> Iterator[None]:
        self.count[kind] += 1
        try:
            yield
        finally:
            self.count[kind] -= 1

    def samples(self) -> Samples:
        return [((kind,), count) for kind, count in self.count.items()]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = RequestMetrics()
        self.registry.register(self.requests)
        self.events_appended = Counter(
            "homeserver_events_appended", "Events appended to the log", registry=self.registry
        )
        self.append_batch_size = Histogram(
            "homeserver_append_batch_events",
            "Events per group-committed append batch",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=self.registry,
        )
        self.held = HeldConnections()
        self.add(
            Sampled(
                "gauge",
                "homeserver_connections_held",
                "Connections held open, by kind: long-polls waiting in /sync, sync streams",
                ("kind",),
                self.held.samples,
            )
        )

    def add(self, metric: Sampled) -> None:
        self.registry.register(metric)

    def watch_followers(self, source: Callable[[], Iterable[FollowerState]]) -> None:
        self.registry.register(FollowerMetrics(source))

    def watch_bus(self, bus: BusState) -> None:
        self.registry.register(BusMetrics(bus))

    def record_batch(self, events: Sequence[Event]) -> None:
        self.events_appended.inc(len(events))
        self.append_batch_size.observe(len(events))

    def render(self) -> bytes:
        return generate_latest(self.registry)
