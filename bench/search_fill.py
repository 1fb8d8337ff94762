"""Fill a server's log with messages fast, for the `search` scenario.

`python -m bench.search_fill --config SERVER_CONFIG --plan PLAN.json`, run with
the server's interpreter from its checkout. Unlike the rest of bench/ this
imports the server: it appends through the server's own `Appender` (signed,
hashed, chained, authorized, projected: the search index included), a
thousand messages per group commit, into the database the config names, while
the server runs. Appends from two processes are safe: the append lock orders
them, and the server re-reads a room's head it finds moved.

At the end it runs VACUUM ANALYZE on the log and the search index, as
autovacuum would soon after a bulk load: the planner then knows the words'
frequencies, and no autovacuum run starts in the middle of the measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from bench.search import message_bodies, vocabulary
from homeserver.app import build_chain_rules
from homeserver.config import load_config
from homeserver.events.model import Draft
from homeserver.events.signing import load_or_create_key
from homeserver.log.appender import Appender
from homeserver.store.database import create_pool

BATCH = 1000
IN_FLIGHT = 2


async def fill(config_path: Path, plan: dict[str, object]) -> None:
    config = load_config(config_path, {})
    if not config.database.dsn:
        raise SystemExit("search_fill: the server must use a database DSN (not embedded)")
    rooms = plan["rooms"]
    assert isinstance(rooms, list)
    count = int(str(plan["messages"]))
    seed = int(str(plan["seed"]))
    words = vocabulary(int(str(plan["vocabulary"])), seed)
    bodies = message_bodies(count, words, seed)
    pool = await create_pool(config.database.dsn, 1, IN_FLIGHT + 1)
    key = load_or_create_key(config.effective_signing_key_path, config.server_name)
    appender = Appender(pool, key, build_chain_rules(), max_batch=IN_FLIGHT)
    appender.start()
    started = time.perf_counter()
    gate = asyncio.Semaphore(IN_FLIGHT)
    done = 0

    async def group(first: int) -> None:
        nonlocal done
        async with gate:
            drafts = []
            for index in range(first, min(first + BATCH, count)):
                room = rooms[index % len(rooms)]
                senders = room["senders"]
                drafts.append(
                    Draft(
                        room["room_id"],
                        senders[(index // len(rooms)) % len(senders)],
                        "m.room.message",
                        {"msgtype": "m.text", "body": bodies[index]},
                    )
                )
            await appender.append_group(drafts)
        done += len(drafts)
        if done % 20_000 < BATCH:
            elapsed = time.perf_counter() - started
            print(f"search_fill: {done}/{count} messages, {done / elapsed:.0f}/s", flush=True)

    try:
        await asyncio.gather(*(group(first) for first in range(0, count, BATCH)))
    finally:
        await appender.stop()
    async with pool.acquire() as conn:
        await conn.execute("VACUUM ANALYZE events, event_search")
    await pool.close()
    elapsed = time.perf_counter() - started
    print(f"search_fill: {count} messages in {elapsed:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--plan", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(fill(args.config, json.loads(args.plan.read_text())))


if __name__ == "__main__":
    main()
