"""The `homeserver` command: run, migrate, check-config."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from homeserver.config import Config, ConfigError, check_config, default_config_path, load_config
from homeserver.logs import configure_logging

log = logging.getLogger("homeserver")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="homeserver", description="LinkChat homeserver")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument(
            "--config",
            type=Path,
            default=None,
            help="config file (default: config.yaml, else config.sample.yaml)",
        )
        return sub

    command("run", "serve the Client-Server API (migrates first)")
    command("migrate", "apply database migrations and exit")
    command("check-config", "validate the config file; print every problem")
    audit = commands.add_parser("audit", help="verify the event log")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser(
        "verify", help="check hashes, signatures, chains and positions of the log"
    )
    verify.add_argument("--config", type=Path, default=None)
    verify.add_argument("--room", default=None, help="only this chain (room, user or alias)")
    verify.add_argument("--since", type=int, default=0, help="start after this position")
    return parser


@contextlib.asynccontextmanager
async def database_dsn(config: Config) -> AsyncIterator[str]:
    """The configured DSN, or an embedded PostgreSQL's when none is configured."""
    if config.database.dsn:
        yield config.database.dsn
        return
    from homeserver.store.database import embedded_postgres

    async with embedded_postgres(config.embedded_postgres_dir.resolve()) as dsn:
        yield dsn


async def _run(config: Config) -> None:
    from homeserver.app import create_app

    async with database_dsn(config) as dsn:
        app = create_app(config, dsn)
        # Cancel a handler when its client hangs up: an abandoned long-poll must not
        # hold its waiter until its timeout (nor delay shutdown). Writes are shielded
        # in the appender, so a cancelled send still lands.
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, handler_cancellation=True
        )
        await runner.setup()
        site = web.TCPSite(runner, config.listen.host, config.listen.port, backlog=2048)
        await site.start()
        log.info(
            "listening on http://%s:%d as %s",
            config.listen.host,
            config.listen.port,
            config.server_name,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
            log.info("shutting down")
        finally:
            await runner.cleanup()


async def _audit_verify(config: Config, room: str | None, since: int) -> int:
    import time

    from homeserver.audit.verify import LogVerifier
    from homeserver.events.signing import load_or_create_key
    from homeserver.store import audit as audit_store
    from homeserver.store.database import create_pool

    key = load_or_create_key(config.effective_signing_key_path, config.server_name)
    verifier = LogVerifier(config.server_name, {key.key_id: key.verify_key})
    started = time.monotonic()
    async with database_dsn(config) as dsn:
        pool = await create_pool(dsn, 1, 1)
        try:
            async with pool.acquire() as conn:
                if since:
                    verifier.heads = await audit_store.chain_heads_at(conn, since)
                    verifier.last_position = since
                async for position, event_id, pdu in audit_store.log_in_order(conn, since):
                    if room is not None:
                        if pdu.get("room_id") != room:
                            continue
                        verifier.last_position = position - 1  # other chains sit between
                    failure = verifier.check(position, event_id, pdu)
                    if failure is not None:
                        print(f"FAILED: {failure}", file=sys.stderr)
                        return 1
        finally:
            await pool.close()
    elapsed = time.monotonic() - started
    print(
        f"ok: {verifier.checked} events in {len(verifier.heads)} chains verified"
        f" with 1 key in {elapsed:.2f} s"
    )
    return 0


async def _migrate(config: Config) -> None:
    from homeserver.store.database import create_pool
    from homeserver.store.migrate import migrate

    async with database_dsn(config) as dsn:
        pool = await create_pool(dsn, 1, 1)
        try:
            async with pool.acquire() as conn:
                applied = await migrate(conn)
        finally:
            await pool.close()
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    path: Path = args.config or default_config_path()
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
    try:
        if args.command == "run":
            import uvloop  # the C event loop: the asyncio transport cost 16% of a send

            uvloop.run(_run(config))
        elif args.command == "migrate":
            asyncio.run(_migrate(config))
        elif args.command == "audit" and args.audit_command == "verify":
            return asyncio.run(_audit_verify(config, args.room, args.since))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
