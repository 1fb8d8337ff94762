"""What a scenario hands back: a printable table and a JSON document."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def machine_info() -> dict[str, Any]:
    """The machine running the benchmark (also the server's, in a local run)."""
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        nproc = os.cpu_count() or 0
    info: dict[str, Any] = {
        "nproc": nproc,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    info["mem_total_kb"] = int(line.split()[1])
                    break
    except OSError:
        pass
    return info


@dataclass
class Table:
    headers: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)

    def render(self) -> str:
        """Columns right-aligned (they are mostly numbers), header underlined."""
        widths = [len(header) for header in self.headers]
        for row in self.rows:
            for index, cell in enumerate(row):
                widths[index] = max(widths[index], len(cell))

        def line(cells: Sequence[str]) -> str:
            return "  ".join(cell.rjust(width) for cell, width in zip(cells, widths, strict=True))

        rule = "  ".join("-" * width for width in widths)
        return "\n".join([line(self.headers), rule, *(line(row) for row in self.rows)])


@dataclass
class Report:
    """One scenario run: parameters, one result per level, notes for humans."""

    scenario: str
    base_url: str
    params: dict[str, Any]
    results: list[dict[str, Any]]
    table: Table
    notes: list[str] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "base_url": self.base_url,
            "date": self.started_at.isoformat(timespec="seconds"),
            "machine": machine_info(),
            "params": self.params,
            "results": self.results,
            "notes": self.notes,
        }

    def render(self) -> str:
        title = f"{self.scenario} against {self.base_url} ({self.started_at:%Y-%m-%d %H:%M} UTC)"
        parts = [title, "", self.table.render()]
        if self.notes:
            parts.extend(["", *self.notes])
        return "\n".join(parts)

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n", encoding="utf-8")


def format_number(value: float | None, digits: int = 1) -> str:
    """A table cell: fixed digits, `-` for a missing value."""
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{value:.{digits}f}"
