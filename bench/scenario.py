"""The shape every scenario module exports, so `__main__` can list and run it."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench.report import Report


@dataclass(frozen=True)
class Scenario:
    """A named benchmark.

    `add_arguments` adds the scenario's own options to its subcommand (the
    common ones, `--base-url`, `--json`, `--spawn-server`..., are added by
    `__main__`). `run` receives the base URL to measure and the parsed
    arguments, and returns the report to print and save.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[str, argparse.Namespace], Awaitable[Report]]
