"""A follower whose output is not idempotent, and a log to follow, for the follower tests.

`Recorder` inserts one row per event it handles into `followed_events`, in the
transaction that moves its position: a table with no unique key, so an event
handled twice shows as two rows and one never handled as none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from homeserver.events import types
from homeserver.events.model import Draft, Event
from homeserver.log.appender import Appender
from homeserver.log.followers import AfterCommit, Start

FOLLOWED = (
    "CREATE TABLE IF NOT EXISTS followed_events"
    " (follower text NOT NULL, position bigint NOT NULL, handled_by text NOT NULL)"
)


class Recorder:
    def __init__(
        self,
        name: str,
        label: str = "",
        *,
        start: Start = Start.FIRST_EVENT,
        event_types: frozenset[str] | None = None,
    ) -> None:
        self.name = name
        self.label = label  # which runner handled: recorded with each row
        self.start = start
        self.event_types = event_types
        self.handled: list[int] = []  # positions, after commit
        self.leads = 0
        self.in_batch = asyncio.Event()  # set once a batch's rows are written, uncommitted
        # While set, a batch waits in its transaction after writing its rows.
        self.hold: asyncio.Event | None = None

    async def handle(self, conn: asyncpg.Connection, events: Sequence[Event]) -> AfterCommit:
        positions = [event.stream_position for event in events]
        await conn.executemany(
            "INSERT INTO followed_events (follower, position, handled_by) VALUES ($1, $2, $3)",
            [(self.name, position, self.label) for position in positions],
        )
        self.in_batch.set()
        if self.hold is not None:
            await self.hold.wait()

        async def committed() -> None:
            self.handled.extend(positions)

        return committed

    async def lead(self) -> None:
        self.leads += 1
        await asyncio.Event().wait()


async def create_followed_table(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(FOLLOWED)
    finally:
        await conn.close()


async def handled_counts(dsn: str, name: str) -> dict[int, int]:
    """How many times each position was handled by follower `name`, as committed."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT position, count(*) AS n FROM followed_events WHERE follower = $1"
            " GROUP BY position",
            name,
        )
    finally:
        await conn.close()
    return {row["position"]: row["n"] for row in rows}


async def append_messages(
    appender: Appender, room_id: str, sender: str, count: int, group: int = 200
) -> list[Event]:
    events: list[Event] = []
    for start in range(0, count, group):
        drafts = [
            Draft(room_id, sender, types.MESSAGE, {"msgtype": "m.text", "body": f"m{n}"})
            for n in range(start, min(start + group, count))
        ]
        events.extend(await appender.append_group(drafts))
    return events


async def log_head(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT coalesce(max(stream_position), 0) FROM events"))
    finally:
        await conn.close()


async def until(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool],
    what: str,
    timeout_s: float = 30,
) -> None:
    """Wait for `condition` to hold, checking every 20 ms; fail after `timeout_s`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        outcome = condition()
        if not isinstance(outcome, bool):
            outcome = await outcome
        if outcome:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
