"""Latency percentiles, throughput and error counts for benchmark results."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bench.client import ApiResponse


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile (0..1) of already sorted values.

    Linear interpolation between the two nearest ranks (numpy's default
    "linear" method), so p99 of 50 samples lies between the two largest
    rather than being the largest.
    """
    if not sorted_values:
        return math.nan
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be within 0..1, not {fraction}")
    rank = fraction * (len(sorted_values) - 1)
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return sorted_values[low]
    weight = rank - low
    return sorted_values[low] * (1.0 - weight) + sorted_values[high] * weight


def throughput(count: int, seconds: float) -> float:
    """Operations per second; 0 for an empty or instantaneous run."""
    return count / seconds if seconds > 0 else 0.0


@dataclass(frozen=True)
class LatencySummary:
    """Latency distribution in milliseconds."""

    count: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def from_seconds(cls, samples: Iterable[float]) -> LatencySummary:
        values = sorted(sample * 1000.0 for sample in samples)
        if not values:
            nan = math.nan
            return cls(0, nan, nan, nan, nan, nan)
        return cls(
            count=len(values),
            mean_ms=sum(values) / len(values),
            p50_ms=percentile(values, 0.50),
            p95_ms=percentile(values, 0.95),
            p99_ms=percentile(values, 0.99),
            max_ms=values[-1],
        )

    def as_json(self) -> dict[str, float | int | None]:
        """JSON-safe form: NaN (no samples) becomes null."""

        def clean(value: float) -> float | None:
            return None if math.isnan(value) else round(value, 3)

        return {
            "count": self.count,
            "mean": clean(self.mean_ms),
            "p50": clean(self.p50_ms),
            "p95": clean(self.p95_ms),
            "p99": clean(self.p99_ms),
            "max": clean(self.max_ms),
        }


@dataclass
class Outcomes:
    """Successes with their latencies, and failures counted by cause.

    A failure's key is the HTTP status as text ("429", "500") or, for a
    request that never got a response, `exception:<ClassName>`. The first
    failure of each cause is kept so a report can show what the server said.
    """

    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def total(self) -> int:
        return self.ok + self.error_count

    def record(self, response: ApiResponse) -> None:
        if response.ok:
            self.latencies.append(response.elapsed)
            return
        cause = str(response.status)
        self.errors[cause] += 1
        self.examples.setdefault(
            cause,
            f"{response.method} {response.path} -> {response.status} {json.dumps(response.body)}",
        )

    def record_exception(self, error: BaseException) -> None:
        cause = f"exception:{type(error).__name__}"
        self.errors[cause] += 1
        self.examples.setdefault(cause, f"{type(error).__name__}: {error}")

    def merge(self, other: Outcomes) -> None:
        self.latencies.extend(other.latencies)
        self.errors.update(other.errors)
        for cause, example in other.examples.items():
            self.examples.setdefault(cause, example)

    def latency(self) -> LatencySummary:
        return LatencySummary.from_seconds(self.latencies)
