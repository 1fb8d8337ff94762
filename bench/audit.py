"""Scenario `audit`: how fast `audit verify` and `audit replay` get through a big log.

Unlike the other scenarios this one measures our own auditor, not an HTTP
server, so it imports `homeserver` to build the log and ignores `--base-url`
(and `--spawn-server`). It creates database `bench_audit_<hex>` through
`--pg-admin-dsn`, writes a log of `--events` events through the real write
path without HTTP (the `Appender`, which authorizes, hashes, signs and
projects each event, in groups of `--group` drafts): `--users` accounts with a
device each, `--rooms` rooms they all join, then messages with, mixed in,
edits, reactions, redactions, topic changes and read receipts. Then it runs
the two commands as an operator would, in a child process each, and reports
their wall time and events per second:

    python -m homeserver audit verify --config <generated>
    python -m homeserver audit replay --config <generated>

The database and the temporary directory (config, signing key) are dropped
afterwards unless `--keep-server` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench.report import Report, Table, format_number
from bench.scenario import Scenario
from bench.spawn import database_dsn

SERVER_NAME = "localhost"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--events", type=int, default=200_000, help="events in the log (default 200000)"
    )
    parser.add_argument("--rooms", type=int, default=20, help="rooms (default 20)")
    parser.add_argument("--users", type=int, default=50, help="users, all in every room (50)")
    parser.add_argument(
        "--group", type=int, default=500, help="drafts appended per group (default 500)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="verify's signature-checking processes (default: its own, one per core)",
    )


async def _generate(dsn: str, key_path: Path, args: argparse.Namespace) -> int:
    """Write the log through the appender; returns the number of events in it."""
    from homeserver.app import build_chain_rules
    from homeserver.events import types
    from homeserver.events.model import Draft
    from homeserver.events.signing import load_key_ring
    from homeserver.log.appender import Appender
    from homeserver.rooms.service import RoomCreation, RoomService
    from homeserver.store.database import create_pool
    from homeserver.store.migrate import migrate

    pool = await create_pool(dsn, 2, 4)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        key = load_key_ring(key_path, SERVER_NAME).current
        appender = Appender(pool, key, build_chain_rules(), max_batch=100)
        appender.start()
        try:
            now = int(time.time() * 1000)
            users = [f"@audit{n}:{SERVER_NAME}" for n in range(max(2, args.users))]
            accounts = [
                Draft(user, user, types.ACCOUNT, {"kind": "user", "created_ts": now}, "")
                for user in users
            ] + [
                Draft(user, user, types.ACCOUNT_DEVICE, {"created_ts": now}, "DEVICE")
                for user in users
            ]
            await appender.append_group(accounts)
            rooms_service = RoomService(pool, appender, SERVER_NAME)
            rooms: list[str] = []
            for _ in range(max(1, args.rooms)):
                room, _ = await rooms_service.create_room(
                    users[0], RoomCreation(preset="public_chat", name="audit")
                )
                await appender.append_group(
                    [
                        Draft(room, user, types.MEMBER, {"membership": "join"}, user)
                        for user in users[1:]
                    ]
                )
                rooms.append(room)
            written = await _count(pool)
            n = 0
            while written < args.events:
                room = rooms[n % len(rooms)]
                size = min(args.group, args.events - written)
                drafts: list[Draft] = []
                for i in range(size):
                    sender = users[(n + i) % len(users)]
                    body = {"msgtype": "m.text", "body": f"message {n + i} " + "x" * (i % 60)}
                    drafts.append(Draft(room, sender, types.MESSAGE, body))
                events = await appender.append_group(drafts)
                extra = _follow_ups(types, Draft, room, users, events, n)
                for group in extra:
                    await appender.append_group(group)
                written += size + sum(len(group) for group in extra)
                n += size
        finally:
            await appender.stop()
        return await _count(pool)
    finally:
        await pool.close()


def _follow_ups(
    types: Any, draft: Any, room: str, users: list[str], events: list[Any], n: int
) -> list[list[Any]]:
    """Edits, reactions, a redaction, a topic change and receipts about a group just sent."""
    from homeserver.receipts.service import receipt_key

    first, last = events[0], events[-1]
    reader = users[(n + 1) % len(users)]
    return [
        [
            draft(
                room,
                first.sender,
                types.MESSAGE,
                {
                    "msgtype": "m.text",
                    "body": "* edited",
                    "m.new_content": {"msgtype": "m.text", "body": "edited"},
                    "m.relates_to": {"rel_type": "m.replace", "event_id": first.event_id},
                },
            ),
            draft(
                room,
                reader,
                types.REACTION,
                {
                    "m.relates_to": {
                        "rel_type": "m.annotation",
                        "event_id": last.event_id,
                        "key": "+1",
                    }
                },
            ),
            draft(room, users[0], types.TOPIC, {"topic": f"topic {n}"}, ""),
        ],
        [draft(room, users[0], types.REDACTION, {"redacts": events[len(events) // 2].event_id})],
        [
            draft(
                reader,
                reader,
                types.RECEIPT,
                {
                    "room_id": room,
                    "receipt_type": "m.read",
                    "thread_id": "",
                    "event_id": last.event_id,
                    "ts": last.origin_server_ts,
                },
                receipt_key(room, "m.read", ""),
            )
        ],
    ]


async def _count(pool: Any) -> int:
    async with pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM events"))


async def _command(config: Path, *args: str) -> tuple[float, str]:
    """Run `python -m homeserver audit ...`; its wall time and output. Raises on failure."""
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "homeserver",
        "audit",
        *args,
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"audit {' '.join(args)} exited {process.returncode}: {err.decode()}")
    return elapsed, out.decode().strip()


async def _admin(admin_dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def run(base_url: str, args: argparse.Namespace) -> Report:
    database = "bench_audit_" + secrets.token_hex(4)
    dsn = database_dsn(args.pg_admin_dsn, database)
    work = Path(tempfile.mkdtemp(prefix="bench_audit_"))
    config = work / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "server_name": SERVER_NAME,
                "database": {"dsn": dsn},
                "data_dir": str(work / "data"),
                "logging": {"level": "WARNING"},
            }
        )
    )
    await _admin(args.pg_admin_dsn, f'CREATE DATABASE "{database}"')
    table = Table(["step", "events", "seconds", "events/s"])
    results: list[dict[str, Any]] = []
    notes = [f"database {database}; config {config}"]
    try:
        started = time.perf_counter()
        events = await _generate(dsn, work / "data" / "signing.key", args)
        steps = [("generate (appender)", time.perf_counter() - started, "")]
        verify_args = ["verify"]
        if args.workers is not None:
            verify_args += ["--workers", str(args.workers)]
        for name, command in (("audit verify", verify_args), ("audit replay", ["replay"])):
            elapsed, output = await _command(config, *command)
            steps.append((name, elapsed, output))
        for name, elapsed, output in steps:
            rate = events / elapsed if elapsed > 0 else None
            table.rows.append(
                [name, str(events), format_number(elapsed, 2), format_number(rate, 0)]
            )
            own = re.search(r"\(([\d,]+) events/s\)", output)
            results.append(
                {
                    "step": name,
                    "events": events,
                    "seconds": elapsed,
                    "events_per_second": rate,
                    "reported_events_per_second": int(own.group(1).replace(",", ""))
                    if own
                    else None,
                    "output": output,
                }
            )
            if output:
                notes.append(f"{name}: {output}")
        notes.append(
            "seconds: wall time of the command, start-up included (the command's own figure,"
            " printed above, excludes start-up)"
        )
    finally:
        if not args.keep_server:
            await _admin(args.pg_admin_dsn, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            shutil.rmtree(work, ignore_errors=True)
    return Report(
        scenario="audit",
        base_url=f"database {database}",
        params={
            "events": args.events,
            "rooms": args.rooms,
            "users": args.users,
            "group": args.group,
            "workers": args.workers,
        },
        results=results,
        table=table,
        notes=notes,
    )


SCENARIO = Scenario(
    name="audit",
    help="generate a big log, then time `audit verify` and `audit replay` (events/s)",
    add_arguments=add_arguments,
    run=run,
)
