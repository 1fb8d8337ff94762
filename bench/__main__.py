"""`python -m bench <scenario> --base-url URL [options]`.

Every scenario takes the common options added here; `python -m bench
<scenario> --help` lists its own.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvloop

from bench import (
    audit,
    channel_fanout,
    connections,
    delivery_latency,
    fanout,
    idle_syncs,
    initial_sync,
    overload,
    send,
)
from bench import device_lists_sync as device_lists_sync_scenario
from bench import device_roundtrip as device_roundtrip_scenario
from bench import e2ee_room as e2ee_room_scenario
from bench import media as media_scenario
from bench import push as push_scenario
from bench import push_rules as push_rules_scenario
from bench import ratelimit as ratelimit_scenario
from bench import search as search_scenario
from bench.client import MatrixRequestError
from bench.report import Report
from bench.scenario import Scenario
from bench.spawn import (
    DEFAULT_ADMIN_DSN,
    DEFAULT_PORT,
    DEFAULT_SERVER_DIR,
    SpawnError,
    SpawnOptions,
    merge_config,
    spawned_server,
)

# One line per scenario module; each exports SCENARIO.
SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in [
        send.SCENARIO,
        delivery_latency.SCENARIO,
        fanout.SCENARIO,
        initial_sync.SCENARIO,
        idle_syncs.SCENARIO,
        connections.SCENARIO,
        channel_fanout.SCENARIO,
        audit.SCENARIO,
        media_scenario.SCENARIO,
        search_scenario.SCENARIO,
        device_roundtrip_scenario.SCENARIO,
        ratelimit_scenario.SCENARIO,
        e2ee_room_scenario.SCENARIO,
        device_lists_sync_scenario.SCENARIO,
        push_scenario.FANOUT,
        push_scenario.SEND,
        push_rules_scenario.SCENARIO,
        overload.SCENARIO,
    ]
}

DEFAULT_BASE_URL = "http://127.0.0.1:8008"


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_argument_group("target")
    target.add_argument(
        "--base-url",
        default=DEFAULT_BASE_URL,
        help=f"server to measure (default {DEFAULT_BASE_URL}); ignored with --spawn-server",
    )
    target.add_argument("--json", type=Path, metavar="FILE", help="also write results as JSON")
    target.add_argument(
        "--server-pid",
        type=int,
        default=None,
        metavar="PID",
        help="the server's process ID on this machine, for scenarios that read its memory "
        "from /proc (set automatically with --spawn-server)",
    )

    spawn = parser.add_argument_group(
        "local server", "start a throw-away server with a fresh database for this run"
    )
    spawn.add_argument(
        "--spawn-server",
        action="store_true",
        help="create a database, start `python -m homeserver run`, measure it, stop, drop",
    )
    spawn.add_argument(
        "--server-dir",
        type=Path,
        default=DEFAULT_SERVER_DIR,
        help=f"server checkout to run from (default {DEFAULT_SERVER_DIR})",
    )
    spawn.add_argument(
        "--server-python", help="interpreter for the server (default: <server-dir>/.venv)"
    )
    spawn.add_argument(
        "--pg-admin-dsn",
        default=DEFAULT_ADMIN_DSN,
        help=f"PostgreSQL DSN allowed to create databases (default {DEFAULT_ADMIN_DSN})",
    )
    spawn.add_argument(
        "--spawn-port", type=int, default=DEFAULT_PORT, help=f"listen port (default {DEFAULT_PORT})"
    )
    spawn.add_argument(
        "--server-config",
        type=json_object,
        default={},
        metavar="JSON",
        help="config keys merged into the generated config, e.g. '{\"rate_limits\": {...}}'",
    )
    spawn.add_argument(
        "--server-workers",
        default=None,
        metavar="N",
        help="server processes (`run --workers N`: a supervisor and N workers sharing"
        " the port; a number or auto); default: the config's (1)",
    )
    spawn.add_argument(
        "--keep-server",
        action="store_true",
        help="keep the database and the server's directory (config, log) afterwards",
    )


def _workers(text: str) -> int | str:
    return text if text == "auto" else int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Load benchmarks for a Matrix homeserver."
    )
    subparsers = parser.add_subparsers(dest="scenario", required=True, metavar="scenario")
    for scenario in SCENARIOS.values():
        sub = subparsers.add_parser(scenario.name, help=scenario.help, description=scenario.help)
        scenario.add_arguments(sub)
        add_common_arguments(sub)
    return parser


async def run_scenario(scenario: Scenario, args: argparse.Namespace) -> Report:
    if not args.spawn_server:
        return await scenario.run(str(args.base_url), args)
    options = SpawnOptions(
        server_dir=args.server_dir,
        python=args.server_python,
        admin_dsn=args.pg_admin_dsn,
        port=args.spawn_port,
        config_overrides=merge_config(
            merge_config(scenario.server_config, args.server_config),
            {} if args.server_workers is None else {"workers": _workers(args.server_workers)},
        ),
        keep=args.keep_server,
    )
    async with spawned_server(options) as server:
        args.server_pid = server.pid
        return await scenario.run(server.base_url, args)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    scenario = SCENARIOS[args.scenario]
    # The load generator's own pauses would count as the server's latency: run
    # it on uvloop and keep full garbage collections rare, as the server does.
    gc.collect()
    gc.freeze()
    gc.set_threshold(700, 20, 100)
    try:
        report = uvloop.run(run_scenario(scenario, args))
    except MatrixRequestError as error:
        # A setup step failed: show the exchange, it is the bug report.
        print(f"setup request failed: {error}", file=sys.stderr)
        print(f"response body: {json.dumps(error.response.body)}", file=sys.stderr)
        return 1
    except SpawnError as error:
        print(f"could not run a local server: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(report.render())
    if args.json is not None:
        report.write_json(args.json)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
