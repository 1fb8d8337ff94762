"""Commands expire by an event: the system user appends `com.linkchat.device.command.expired`.

The commands projection never reads a clock (a replay must agree with the
live server), so when a command's ttl passes unfinished, the server appends
its expiry to the device room, and the reducer marks it expired on that
event. One `CommandExpiry` task per process does it:

- the commands this process appends (its appender listener) wait in a heap
  until their expiry time, when the task wakes for them;
- at start, and every `sweep_seconds`, it reads the open commands from the
  projection (at start all of them; later those overdue by SWEEP_GRACE_MS),
  which catches the commands of a process that stopped before they expired.

With several processes two may append the same expiry: the rules refuse the
second under the append lock (LINKCHAT_COMMAND_FINISHED), so it is written
once. Before appending, the task skips commands the projection says are
finished, so a command answered in time costs no append.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable, Sequence

import asyncpg

from homeserver.alarm import Alarm
from homeserver.errors import MatrixError
from homeserver.events import types
from homeserver.events.model import Draft, Event
from homeserver.log.appender import Appender
from homeserver.projections.device_control import command_of
from homeserver.store import device_control as device_store

log = logging.getLogger(__name__)

# How late a command of another process may be before a sweep expires it.
SWEEP_GRACE_MS = 2_000


def expiry_draft(room_id: str, command_id: str, system_user: str) -> Draft:
    content = {"m.relates_to": {"rel_type": types.DEVICE_RESULT_RELATION, "event_id": command_id}}
    return Draft(room_id, system_user, types.DEVICE_COMMAND_EXPIRED, content)


class CommandExpiry:
    def __init__(
        self,
        pool: asyncpg.Pool,
        appender: Appender,
        system_user: str,
        *,
        sweep_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pool = pool
        self._appender = appender
        self._system_user = system_user
        self._sweep_ms = int(sweep_seconds * 1000)
        self._clock = clock
        # (expires_ts, command ID, room ID) of the commands waiting to expire.
        self._heap: list[tuple[int, str, str]] = []
        self._waiting: set[str] = set()
        self._wake = Alarm()
        self._task: asyncio.Task[None] | None = None
        self.expired = 0

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def committed(self, events: Sequence[Event]) -> None:
        """Appender listener: watch the commands this process appended."""
        for event in events:
            if event.type == types.DEVICE_COMMAND and (sent := command_of(event)) is not None:
                self._watch(sent.expires_ts, event.event_id, event.room_id)

    def _watch(self, expires_ts: int, command_id: str, room_id: str) -> None:
        if command_id in self._waiting:
            return
        first = self._heap[0][0] if self._heap else None
        heapq.heappush(self._heap, (expires_ts, command_id, room_id))
        self._waiting.add(command_id)
        if first is None or expires_ts < first:
            self._wake.ring()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="command-expiry")

    async def stop(self) -> None:
        if self._task is not None:
            self._wake.close()
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        next_sweep: int | None = None  # None: the first sweep, of every open command
        while not self._wake.closed:
            # A command watched while deciding rings the alarm: the sleep below then
            # returns at once.
            try:
                now = self._now_ms()
                if next_sweep is None or now >= next_sweep:
                    await self._sweep(None if next_sweep is None else now - SWEEP_GRACE_MS)
                    next_sweep = now + self._sweep_ms
                await self._expire_due(self._now_ms())
            except Exception:
                log.exception("expiring device commands failed; trying again")
                await asyncio.sleep(1)
                continue
            now = self._now_ms()
            wait_ms = next_sweep - now
            if self._heap:
                wait_ms = min(wait_ms, self._heap[0][0] - now)
            await self._wake.sleep(max(wait_ms, 0) / 1000)

    async def _sweep(self, due_by: int | None) -> None:
        async with self._pool.acquire() as conn:
            rows = await device_store.open_commands(conn, due_by=due_by)
        for row in rows:
            self._watch(row.expires_ts, row.command_id, row.room_id)

    async def _expire_due(self, now_ms: int) -> None:
        due: list[tuple[str, str]] = []
        while self._heap and self._heap[0][0] <= now_ms:
            _, command_id, room_id = heapq.heappop(self._heap)
            self._waiting.discard(command_id)
            due.append((command_id, room_id))
        if not due:
            return
        async with self._pool.acquire() as conn:
            still_open = await device_store.open_commands(
                conn, command_ids=[command_id for command_id, _ in due]
            )
        open_ids = {row.command_id for row in still_open}
        drafts = [
            expiry_draft(room_id, command_id, self._system_user)
            for command_id, room_id in due
            if command_id in open_ids
        ]
        # Each alone: a group is all or nothing, and one may already be finished.
        outcomes = await asyncio.gather(
            *(self._appender.append(draft) for draft in drafts), return_exceptions=True
        )
        for draft, outcome in zip(drafts, outcomes, strict=True):
            if isinstance(outcome, MatrixError):
                # Finished or expired meanwhile (perhaps by another process): nothing to do.
                log.debug("expiry of %s refused: %s", draft.content, outcome.error)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                self.expired += 1
