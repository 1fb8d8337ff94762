"""Mutes end by an event: when a mute's time runs out, the server unmutes in the muter's name.

`MuteExpiry` is a durable follower (log/followers.py), the pattern of
device_control/expiry.py, so exactly one process lifts mutes at a time and
another carries on when that one dies:

- its schedule survives a restart because it is a projection: when a process
  takes the lease, `lead` reads every mute with an end (`room_mutes`) into a
  heap of deadlines, then sleeps until the earliest;
- `handle` adds the mutes appended after that, and forgets the ones lifted or
  replaced (a mute made again has a new end), as the log wakes it, wherever
  they were made;
- the unmute is idempotent: it names the mute fact it ends (`only`), appended
  as a StateEdit of that fact, so a mute already lifted, or made again since,
  is left alone, and a process that dies half-way and the one that takes over
  lift each mute once.

The unmute is sent by the muter (the duration was theirs to set). One who has
since left the room or lost the power cannot: the mute then stays, listed with
its end passed, for someone with the power to lift (logged).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field

import asyncpg

from homeserver.errors import MatrixError
from homeserver.events import types
from homeserver.events.content.mutes import muted_user
from homeserver.events.model import Event
from homeserver.log.followers import AfterCommit, Start
from homeserver.log.timers import Deadlines, run_timers
from homeserver.moderation.mutes import MuteService
from homeserver.projections.mutes import mute_of
from homeserver.store import mutes as mute_store

log = logging.getLogger(__name__)

# Unmutes appended at once: more mutes due wait for the next round.
LIFT_AT_ONCE = 100

Key = tuple[str, str]  # (room ID, muted user)


@dataclass(eq=False)
class MuteExpiry:
    name = "moderation.mute_expiry"
    # Mutes made before its first run are in the projection `lead` reads.
    start = Start.NOW
    event_types = frozenset({types.MUTE})

    pool: asyncpg.Pool
    mutes: MuteService
    _: KW_ONLY
    clock: Callable[[], float] = time.time
    # The mutes with an end: key -> (the mute fact's event ID, the muter).
    _deadlines: Deadlines[Key, tuple[str, str]] = field(
        default_factory=Deadlines, init=False, repr=False
    )

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def handle(self, conn: asyncpg.Connection, events: Sequence[Event]) -> AfterCommit:
        changed = [(event, user_id) for event in events if (user_id := muted_user(event.state_key))]

        async def schedule() -> None:
            for event, user_id in changed:
                key = (event.room_id, user_id)
                mute = mute_of(event)
                if mute is None or mute.expires_ts is None:
                    self._deadlines.forget(key)
                else:
                    self._deadlines.watch(mute.expires_ts, key, (event.event_id, event.sender))

        return schedule

    async def lead(self) -> None:
        try:
            async with self.pool.acquire() as conn:
                rows = await mute_store.timed_mutes(conn)
            for row in rows:
                if row.expires_ts is not None:
                    key = (row.room_id, row.user_id)
                    self._deadlines.watch(row.expires_ts, key, (row.event_id, row.muted_by))
            await run_timers(
                self._deadlines, self._lift, LIFT_AT_ONCE, self._now_ms, "lifting mutes"
            )
        finally:
            # The next holder of the lease, perhaps this process again, starts afresh.
            self._deadlines.clear()

    async def _lift(self, due: list[tuple[int, Key, tuple[str, str]]]) -> None:
        outcomes = await asyncio.gather(
            *(
                self.mutes.unmute(muter, room_id, user_id, only=event_id)
                for _, (room_id, user_id), (event_id, muter) in due
            ),
            return_exceptions=True,
        )
        errors = 0
        for (expires_ts, key, fact), outcome in zip(due, outcomes, strict=True):
            if isinstance(outcome, MatrixError):
                # Lifted meanwhile (not found), or the muter cannot any more: left as is.
                log.warning("mute of %s in %s not lifted: %s", key[1], key[0], outcome.error)
            elif isinstance(outcome, BaseException):
                if key not in self._deadlines:
                    self._deadlines.watch(expires_ts, key, fact)
                errors += 1
        if errors:
            raise RuntimeError(f"{errors} mutes could not be lifted")
