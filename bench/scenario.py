"""The shape every scenario module exports, so `__main__` can list and run it."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.report import Report


@dataclass(frozen=True)
class Scenario:
    """A named benchmark.

    `add_arguments` adds the scenario's own options to its subcommand (the
    common ones, `--base-url`, `--json`, `--spawn-server`..., are added by
    `__main__`). `run` receives the base URL to measure and the parsed
    arguments, and returns the report to print and save. `server_config` is
    merged into the config of a `--spawn-server` server (under the user's own
    `--server-config`), for a scenario that needs e.g. a bigger upload limit.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[str, argparse.Namespace], Awaitable[Report]]
    server_config: Mapping[str, Any] = field(default_factory=dict)


def add_timeout_ms(parser: argparse.ArgumentParser) -> None:
    """`--timeout-ms`: the long-poll timeout of the scenario's syncs."""
    parser.add_argument(
        "--timeout-ms",
        type=int,
        default=30_000,
        metavar="MS",
        help="long-poll timeout of each sync (default 30000)",
    )
