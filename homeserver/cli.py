"""The `homeserver` command: run, migrate, check-config, audit, keys, admin."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from homeserver.config import (
    Config,
    ConfigError,
    check_config,
    default_config_path,
    load_config,
    override_workers,
)
from homeserver.logs import configure_logging
from homeserver.open_files import raise_open_files_limit

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger("homeserver")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="homeserver", description="LinkChat homeserver")
    commands = parser.add_subparsers(dest="command", required=True)
    run = _command(commands, "run", "serve the Client-Server API (migrates first)")
    run.add_argument(
        "--workers",
        default=None,
        help="server processes sharing the port: a number or 'auto' (one per core);"
        " overrides the config's `workers`",
    )
    # Set by the supervisor on the workers it starts.
    run.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    run.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)
    _command(commands, "migrate", "apply database migrations and exit")
    _command(commands, "check-config", "validate the config file; print every problem")
    _add_audit_commands(commands)
    return parser


def _command(parent: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    """A subcommand: every one takes --config."""
    parser: argparse.ArgumentParser = parent.add_parser(name, help=help_text)
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="config file (default: config.yaml, else config.sample.yaml)",
    )
    return parser


def _group(parent: Any, name: str, help_text: str) -> Any:
    """A command of subcommands (`audit verify`); `args.<name>_command` names the one chosen."""
    group = parent.add_parser(name, help=help_text)
    return group.add_subparsers(dest=f"{name}_command", required=True)


@contextlib.asynccontextmanager
async def database_dsn(config: Config) -> AsyncIterator[str]:
    """The configured DSN, or an embedded PostgreSQL's when none is configured."""
    if config.database.dsn:
        yield config.database.dsn
        return
    from homeserver.store.database import embedded_postgres

    async with embedded_postgres(config.embedded_postgres_dir.resolve()) as dsn:
        yield dsn


async def _run(config: Config, worker: int | None = None, ready_fd: int | None = None) -> None:
    from homeserver.app import create_app

    # Every held connection is a file descriptor; the usual soft limit is 1024.
    raise_open_files_limit()
    if worker is None:
        _say_where_email_goes(config)
    async with database_dsn(config) as dsn:
        app = create_app(config, dsn)
        # Cancel a handler when its client hangs up: an abandoned long-poll must not
        # hold its waiter until its timeout (nor delay shutdown). Writes are shielded
        # in the appender, so a cancelled send still lands.
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,
            shutdown_timeout=config.shutdown_grace_seconds,
        )
        await runner.setup()
        # Workers share the port; a lone process must not share it by accident.
        site = web.TCPSite(
            runner,
            config.listen.host,
            config.listen.port,
            backlog=2048,
            reuse_port=worker is not None,
        )
        await site.start()
        _settle_garbage_collection()
        log.info(
            "listening on http://%s:%d as %s%s",
            config.listen.host,
            config.listen.port,
            config.server_name,
            f" (worker {worker})" if worker is not None else "",
        )
        if ready_fd is not None:
            from homeserver.supervisor import signal_ready

            signal_ready(ready_fd)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
            log.info("shutting down")
        finally:
            await runner.cleanup()


def _settle_garbage_collection() -> None:
    """Keep what start-up built out of later collections, and collect the oldest
    generation less often.

    Modules, config, caches and pools live as long as the process, yet every
    full collection walked them again: under load that stopped the event loop
    for 60-100 ms about every second, which was the delivery p99.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(700, 20, 100)


def _say_where_email_goes(config: Config) -> None:
    """One line at start-up (not one per worker) when emails only go to the log."""
    from homeserver.email.mailer import NO_SMTP_HOST

    if not config.email.smtp_host:
        log.warning(NO_SMTP_HOST)


async def _supervise(config: Config, config_path: Path) -> int:
    # `path` is absolute (see main): workers may start from elsewhere.
    """Prepare once what every worker needs, then run the workers."""
    from homeserver.events.signing import load_key_ring
    from homeserver.store.migrate import migrate
    from homeserver.supervisor import Supervisor

    _say_where_email_goes(config)
    async with database_dsn(config) as dsn:
        async with _pool(dsn) as pool, pool.acquire() as conn:
            applied = await migrate(conn)
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        load_key_ring(config.effective_signing_key_path, config.server_name)
        return await Supervisor(config, config_path, dsn).run()


def _as_worker(config: Config, index: int) -> Config:
    """A worker's config: its own metrics port (metrics.port + index)."""
    metrics = config.metrics.model_copy(update={"port": config.metrics.port + index})
    return config.model_copy(update={"metrics": metrics})


def _die_with_parent() -> None:
    """A worker ends when its supervisor does, even killed with -9 (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() == 1:  # the supervisor died before the line above
            sys.exit(1)


async def _migrate(config: Config) -> None:
    from homeserver.store.migrate import migrate

    async with _database(config) as pool, pool.acquire() as conn:
        applied = await migrate(conn)
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    path: Path = args.config or default_config_path()
    if args.command == "audit" and args.audit_command == "verify" and args.file is not None:
        # An export verifies offline: no config, no database.
        return asyncio.run(_audit_verify_file(args.file, args.keys, args.workers))
    if args.command == "check-config":
        problems = check_config(path)
        for problem in problems:
            print(problem, file=sys.stderr)
        if not problems:
            print(f"{path}: ok")
        return 1 if problems else 0
    try:
        config = load_config(path)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    configure_logging(config.logging.level, config.logging.format)
    from homeserver.events.signing import KeyRingError

    try:
        if args.command == "run":
            if args.workers is not None:
                try:
                    config = override_workers(config, args.workers)
                except ConfigError as error:
                    print(error, file=sys.stderr)
                    return 1
            if args.worker is None and config.worker_count > 1:
                return asyncio.run(_supervise(config, path.resolve()))
            import uvloop  # the C event loop: the asyncio transport cost 16% of a send

            if args.worker is not None:
                _die_with_parent()
                config = _as_worker(config, args.worker)
            uvloop.run(_run(config, args.worker, args.ready_fd))
        elif args.command == "migrate":
            asyncio.run(_migrate(config))
        elif args.command in ("audit", "keys", "admin"):
            return _run_audit_command(config, args)
    except KeyRingError as error:  # the operator's to fix: say what, no traceback
        log.error("cannot start: signing key: %s", error)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


# --- audit, keys, admin ---------------------------------------------------------------------


def _duration_ms(text: str) -> int:
    """`30d`, `12h`, `15m`, `45s` or `0` as milliseconds."""
    units = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
    if text == "0":
        return 0
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected a duration like 30d, 12h, 15m or 45s")
    return int(number) * units[unit]


def _add_audit_commands(commands: Any) -> None:
    audit_commands = _group(commands, "audit", "verify, replay and export the event log")
    verify = _command(
        audit_commands,
        "verify",
        "check hashes, signatures (by the key valid at the time), chains and positions",
    )
    scope = verify.add_mutually_exclusive_group()
    scope.add_argument("--room", default=None, help="only this chain (room, user or alias)")
    scope.add_argument(
        "--file", type=Path, default=None, help="verify an export (offline, no database)"
    )
    verify.add_argument("--since", type=int, default=0, help="start after this position")
    verify.add_argument(
        "--keys",
        type=Path,
        default=None,
        help="trusted public keys: a key ring file or a saved /_matrix/key/v2/server answer"
        " (default: the key ring next to signing_key_path, or the export's own keys)",
    )
    verify.add_argument(
        "--workers", type=int, default=None, help="processes checking signatures (default: cores)"
    )
    replay = _command(
        audit_commands, "replay", "rebuild every projection from the log and compare with live"
    )
    replay.add_argument("--keep", action="store_true", help="keep the scratch schema")
    replay.add_argument(
        "--schema", default="audit_replay", help="scratch schema name (default audit_replay)"
    )
    export = _command(audit_commands, "export", "write signed events and public keys as JSON Lines")
    what = export.add_mutually_exclusive_group(required=True)
    what.add_argument("--room", default=None, help="one chain (room, user or alias)")
    what.add_argument("--all", action="store_true", help="the whole log")
    export.add_argument("--out", type=Path, required=True, help="file to write (.jsonl)")

    keys_commands = _group(commands, "keys", "the server's signing keys")
    rotate = _command(keys_commands, "rotate", "new signing key; the old one verifies old events")
    rotate.add_argument(
        "--grace",
        type=_duration_ms,
        default=_duration_ms("1h"),
        help="how long the old key still signs (default 1h); running processes switch to"
        " the new key at their next write, so 0 is for a compromised key",
    )
    _command(keys_commands, "list", "every key with its validity window")
    generate = _command(
        keys_commands,
        "generate",
        "make the signing key and its key ring if there are none (for a Secret, a new machine)",
    )
    generate.add_argument(
        "--out",
        type=Path,
        default=None,
        help="the key file to write, its key ring beside it (default: signing_key_path)",
    )

    admin_commands = _group(commands, "admin", "operator actions on the stored log")
    purge = _command(
        admin_commands,
        "purge-redacted",
        "remove for good the content of events redacted longer ago than --older-than",
    )
    purge.add_argument(
        "--older-than", type=_duration_ms, required=True, help="e.g. 30d, 12h, 15m, 0"
    )


def _run_audit_command(config: Config, args: argparse.Namespace) -> int:
    if args.command == "keys":
        return _keys_command(config, args)
    if args.command == "admin":
        return asyncio.run(_admin_purge_redacted(config, args.older_than))
    if args.audit_command == "verify":
        return asyncio.run(_audit_verify(config, args.room, args.since, args.keys, args.workers))
    if args.audit_command == "replay":
        return asyncio.run(_audit_replay(config, args.schema, args.keep))
    return asyncio.run(_audit_export(config, None if args.all else args.room, args.out))


@contextlib.asynccontextmanager
async def _database(config: Config) -> AsyncIterator[asyncpg.Pool]:
    """A pool of one connection to the configured (or embedded) database."""
    async with database_dsn(config) as dsn, _pool(dsn) as pool:
        yield pool


@contextlib.asynccontextmanager
async def _pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool of one connection to `dsn`."""
    from homeserver.store.database import create_pool

    pool = await create_pool(dsn, 1, 1)
    try:
        yield pool
    finally:
        await pool.close()


async def _audit_verify(
    config: Config, room: str | None, since: int, keys_path: Path | None, workers: int | None
) -> int:
    from homeserver.audit.verify import trusted_keys, verify_log
    from homeserver.events.signing import KeyRingError, read_public_keys

    try:
        if keys_path is not None:
            keys = trusted_keys(keys_path)
        else:
            keys = read_public_keys(config.effective_signing_key_path)
    except (OSError, ValueError, KeyRingError) as error:
        print(f"cannot read the public keys: {error}", file=sys.stderr)
        return 2
    async with _database(config) as pool:
        verified = await verify_log(pool, config.server_name, keys, room, since, workers)
    if verified.failure is not None:
        print(f"FAILED: {verified.failure}", file=sys.stderr)
        return 1
    print(verified.summary())
    return 0


async def _audit_verify_file(path: Path, keys_path: Path | None, workers: int | None) -> int:
    from homeserver.audit.export import ExportError, verify_export
    from homeserver.audit.verify import trusted_keys
    from homeserver.events.signing import KeyRingError

    try:
        trusted = trusted_keys(keys_path) if keys_path is not None else None
        outcome = await verify_export(path, trusted, workers)
    except (OSError, ValueError, KeyRingError, ExportError) as error:
        print(f"cannot verify {path}: {error}", file=sys.stderr)
        return 2
    if outcome.failure is not None:
        print(f"FAILED: {path}: {outcome.failure}", file=sys.stderr)
        return 1
    print(outcome.summary(path, trusted=keys_path is not None))
    return 0


async def _audit_replay(config: Config, schema: str, keep: bool) -> int:
    from homeserver.audit.replay import ReplayError, replay_log

    async with _database(config) as pool:
        try:
            result = await replay_log(pool, schema, keep)
        except ReplayError as error:
            print(f"cannot replay: {error}", file=sys.stderr)
            return 2
    if not result.identical:
        print(result.summary(), file=sys.stderr)
        for difference in result.differences:
            print(difference.describe(), file=sys.stderr)
        return 1
    print(result.summary())
    return 0


async def _audit_export(config: Config, room: str | None, out: Path) -> int:
    from homeserver.audit.export import export_to_file
    from homeserver.events.signing import KeyRingError, read_public_keys

    try:
        keys = read_public_keys(config.effective_signing_key_path)
    except KeyRingError as error:
        print(f"cannot read the public keys: {error}", file=sys.stderr)
        return 2
    async with _database(config) as pool:
        exported = await export_to_file(pool, out, config.server_name, keys, room)
    if room is not None and exported.events == 0:
        print(f"no events of {room} in the log", file=sys.stderr)
        return 1
    print(exported.summary(out))
    return 0


def _keys_command(config: Config, args: argparse.Namespace) -> int:
    from homeserver.events.signing import KeyRingError, public_keys_oldest_first, rotate_key

    path = config.effective_signing_key_path
    try:
        if args.keys_command == "generate":
            return _keys_generate(args.out or path, config.server_name)
        if args.keys_command == "rotate":
            now = int(time.time() * 1000)
            ring = rotate_key(path, config.server_name, now, args.grace)
            print(
                f"new signing key {ring.current.key_id}, valid from {now}; the old key expires at"
                f" {now + args.grace}. Running server processes switch to it at their next"
                " write; on other machines, copy the key ring file, then the key, before then."
            )
        for key in public_keys_oldest_first(path):
            print(key.describe())
    except (OSError, KeyRingError) as error:
        print(f"signing keys at {path}: {error}", file=sys.stderr)
        return 2
    return 0


def _keys_generate(path: Path, server_name: str) -> int:
    from homeserver.events.signing import load_key_ring, ring_path

    existed = path.exists()
    ring = load_key_ring(path, server_name)
    verb = "kept the existing" if existed else "made a new"
    print(f"{verb} signing key {ring.current.key_id} for {server_name}:")
    print(f"  {path}")
    print(f"  {ring_path(path)}")
    print(
        "Both files go together, e.g. into one Kubernetes Secret: kubectl create secret"
        f" generic linkchat-signing-key --from-file={path} --from-file={ring_path(path)}"
    )
    return 0


async def _admin_purge_redacted(config: Config, older_than_ms: int) -> int:
    from homeserver.audit.purge import purge_redacted_older_than
    from homeserver.store.migrate import migrate

    async with _database(config) as pool:
        async with pool.acquire() as conn:
            await migrate(conn)  # the operator may run this before the new server ever did
        purged = await purge_redacted_older_than(pool, older_than_ms)
    print(purged.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
