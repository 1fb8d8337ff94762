"""Commands expire by an event: the system user appends `com.linkchat.device.command.expired`.

The commands projection never reads a clock (a replay must agree with the
live server), so when a command's ttl passes unfinished, the server appends
its expiry to the device room, and the reducer marks it expired on that
event. `CommandExpiry` is a durable follower (log/followers.py), so exactly
one process does it at a time, and another carries on when that one dies:

- its schedule survives a crash because it is a projection: when a process
  takes the lease, `lead` reads every open command (`device_command_status`)
  into a heap of deadlines, then wakes for the earliest;
- `handle` adds the commands appended after that (and drops those finished
  in time), as the log wakes it: no process's commands are missed, wherever
  they were sent;
- the expiry append is idempotent: the rules refuse a second expiry, or one
  for a finished command, under the append lock (LINKCHAT_COMMAND_EXPIRED,
  LINKCHAT_COMMAND_FINISHED), so a process that dies half-way through the
  commands due, and the one that takes over and expires them again, still
  write one expiry each.

Before appending, it skips commands the projection says are finished, so a
command answered in time costs no append.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field

import asyncpg

from homeserver.device_control.rules import COMMAND_NOT_EXPIRED
from homeserver.errors import MatrixError
from homeserver.events import types
from homeserver.events.model import Draft, Event
from homeserver.log.appender import Appender
from homeserver.log.followers import AfterCommit, Start
from homeserver.log.timers import Deadlines, run_timers
from homeserver.projections.device_control import TERMINAL, command_of, status_of
from homeserver.store import device_control as device_store

log = logging.getLogger(__name__)

# Expiries appended at once: more commands due wait for the next round.
EXPIRE_AT_ONCE = 500
# A command the rules found not yet expired (this process's clock behind the
# one that sent it) is tried again this much later.
RETRY_MS = 1_000


def expiry_draft(room_id: str, command_id: str, system_user: str) -> Draft:
    content = {"m.relates_to": {"rel_type": types.DEVICE_RESULT_RELATION, "event_id": command_id}}
    return Draft(room_id, system_user, types.DEVICE_COMMAND_EXPIRED, content)


@dataclass(eq=False)
class CommandExpiry:
    name = "device_control.command_expiry"
    # Commands sent before its first run are in the projection `lead` reads.
    start = Start.NOW
    event_types = frozenset(
        {types.DEVICE_COMMAND, types.DEVICE_RESULT, types.DEVICE_COMMAND_EXPIRED}
    )

    pool: asyncpg.Pool
    appender: Appender
    system_user: str
    _: KW_ONLY
    clock: Callable[[], float] = time.time
    # The commands waiting to expire: command ID -> its room.
    _deadlines: Deadlines[str, str] = field(default_factory=Deadlines, init=False, repr=False)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def handle(self, conn: asyncpg.Connection, events: Sequence[Event]) -> AfterCommit:
        sent = [
            (found.expires_ts, event.event_id, event.room_id)
            for event in events
            if (found := command_of(event)) is not None
        ]
        finished = [
            (answer.command_id, event.room_id)
            for event in events
            if (answer := status_of(event)) is not None and answer.status in TERMINAL
        ]

        async def schedule() -> None:
            for expires_ts, command_id, room_id in sent:
                self._watch(expires_ts, command_id, room_id)
            for command_id, room_id in finished:
                # A stray "result" in another room answers nothing (see the projection).
                if self._deadlines.get(command_id) == room_id:
                    self._deadlines.forget(command_id)

        return schedule

    def _watch(self, expires_ts: int, command_id: str, room_id: str) -> None:
        if command_id not in self._deadlines:
            self._deadlines.watch(expires_ts, command_id, room_id)

    async def lead(self) -> None:
        try:
            async with self.pool.acquire() as conn:
                rows = await device_store.open_commands(conn)
            for row in rows:
                self._watch(row.expires_ts, row.command_id, row.room_id)
            await run_timers(
                self._deadlines,
                self._expire,
                EXPIRE_AT_ONCE,
                self._now_ms,
                "expiring device commands",
            )
        finally:
            # The next holder of the lease, perhaps this process again, starts afresh.
            self._deadlines.clear()

    async def _expire(self, due: list[tuple[int, str, str]]) -> None:
        try:
            async with self.pool.acquire() as conn:
                still_open = await device_store.open_commands(
                    conn, command_ids=[command_id for _, command_id, _ in due]
                )
        except BaseException:
            self._rewatch(due)
            raise
        open_ids = {row.command_id for row in still_open}
        due = [item for item in due if item[1] in open_ids]
        drafts = [
            expiry_draft(room_id, command_id, self.system_user) for _, command_id, room_id in due
        ]
        # Each alone: a group is all or nothing, and one may already be finished.
        outcomes = await asyncio.gather(
            *(self.appender.append(draft) for draft in drafts), return_exceptions=True
        )
        again: list[tuple[int, str, str]] = []
        errors = 0
        for item, outcome in zip(due, outcomes, strict=True):
            if isinstance(outcome, MatrixError):
                if outcome.errcode == COMMAND_NOT_EXPIRED:
                    again.append((max(item[0], self._now_ms() + RETRY_MS), item[1], item[2]))
                # Otherwise finished or expired meanwhile (perhaps by another process).
                log.debug("expiry of %s refused: %s", item[1], outcome.error)
            elif isinstance(outcome, BaseException):
                again.append(item)
                errors += 1
        self._rewatch(again)
        if errors:
            raise RuntimeError(f"{errors} expiries could not be appended")

    def _rewatch(self, items: list[tuple[int, str, str]]) -> None:
        for expires_ts, command_id, room_id in items:
            self._watch(expires_ts, command_id, room_id)
