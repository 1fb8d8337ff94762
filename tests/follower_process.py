"""A process that runs one recording follower, for the kill -9 test.

    python -m tests.follower_process DSN LABEL [--hang-in-batch N]

It follows the log as the follower `Recorder` named "killed" (tests/followers.py)
and prints a line as things happen: `leading` when it took the lease, `not
leading` when it lost it, `batch FIRST LAST` once a batch's rows are written,
still uncommitted. With
`--hang-in-batch N`, its N-th batch then waits forever inside its transaction,
so a kill lands in the middle of that batch for sure.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

import asyncpg

from homeserver.events.model import Event
from homeserver.log.followers import AfterCommit, Followers
from homeserver.store.database import create_pool
from tests.followers import Recorder

NAME = "killed"
BATCH_SIZE = 25


class AnnouncingRecorder(Recorder):
    def __init__(self, label: str, hang_in_batch: int | None) -> None:
        super().__init__(NAME, label)
        self._hang_in_batch = hang_in_batch
        self._batches = 0

    async def handle(self, conn: asyncpg.Connection, events: Sequence[Event]) -> AfterCommit:
        committed = await super().handle(conn, events)
        self._batches += 1
        print(f"batch {events[0].stream_position} {events[-1].stream_position}", flush=True)
        if self._batches == self._hang_in_batch:
            await asyncio.Event().wait()
        return committed

    async def lead(self) -> None:
        print("leading", flush=True)
        try:
            await super().lead()
        finally:
            print("not leading", flush=True)


async def main(dsn: str, label: str, hang_in_batch: int | None) -> None:
    pool = await create_pool(dsn, 1, 2)
    runner = Followers(
        pool, dsn, catch_up_seconds=1, lease_check_seconds=0.2, batch_size=BATCH_SIZE
    )
    runner.add(AnnouncingRecorder(label, hang_in_batch))
    runner.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("dsn")
    parser.add_argument("label")
    parser.add_argument("--hang-in-batch", type=int, default=None)
    args = parser.parse_args()
    asyncio.run(main(args.dsn, args.label, args.hang_in_batch))
