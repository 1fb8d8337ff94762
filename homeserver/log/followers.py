"""Durable followers: whatever reacts to the log, once per event, in one process at a time.

A follower (command expiry, mute expiry, push; notification emails and device
lists later) has a name and a tracking position in PostgreSQL
(`follower_positions`). The runner, `Followers`, one per process:

- holds the follower's **lease** before it runs it: a session advisory lock
  on a connection of its own, outside the pool. Across N processes exactly
  one holds it. The others try again every `lease_check_seconds`, so when
  the holder dies (its connection closes, or the server ends its session
  after `idle_session_timeout` when it stops answering) another takes over
  within seconds. The holder checks its connection as often, and stops
  running the follower the moment it is lost (PostgreSQL restarted), then
  takes the lease again like everybody else.
- reads the events after the position in batches, in one statement each,
  which also reads the head of the log: positions become visible strictly in
  order (store/events.py, the append lock), so nothing committed late is
  ever skipped.
- calls `handle(conn, events)` in the transaction that moves the position,
  so the follower's output and its position commit together, exactly once,
  as the `eventsourcing` library's process applications do. The position is
  moved compare-and-set first thing in that transaction: should two
  processes ever both believe they hold the lease, the second to handle a
  batch finds the position moved and rolls back.
- says where it got to (`FollowerPositions`) after each batch it recorded,
  so whoever waits for it (push counts) is woken, in any process.
- is woken by every commit, of this process (the appender) or another (the
  bus), through `wake()`, and otherwise looks again every `catch_up_seconds`
  as a safety net; it never polls the log in a loop. A burst of commits makes
  one read (it reads WAKE_COALESCE_SECONDS after a wake-up). A follower far
  behind reads batch after batch on a pool connection; the appender never
  waits for it (nothing it takes is a lock the appender needs).

What a follower gets and gives (`Follower`):

- `handle` writes its output with `conn`, in the transaction: rows of its own
  tables, an outbox of work. It waits on nothing else (no HTTP): PostgreSQL
  ends a transaction that waited on its process for BATCH_IDLE_SECONDS, so
  that a process frozen in a batch cannot hold up the next lease holder. It
  may return an `AfterCommit`, awaited once the transaction committed: for
  in-memory effects only (wake a delivery loop, schedule a timer), because a
  crash just after the commit loses it for good.
- `lead()` runs only while this process holds the lease, from when it takes
  it until it loses it (then it is cancelled). It is for the work that is not
  one event's: timers, and sending what `handle` put in an outbox. It must
  rebuild what it needs from PostgreSQL when it starts (the last holder may
  have died with it in memory), and its side effects happen at least once:
  they must be idempotent, or recorded as done per item.
- `start`: where a follower seen for the first time begins, `FIRST_EVENT` to
  build something from the whole log, `NOW` for one that must not react to
  old events (push must never send last year's messages).
- `event_types`: the only types it is given (None: all), filtered in SQL.

How the next followers fit:

- **Push** (in order per pusher, retried for hours): `handle` evaluates the
  push rules of each message for its recipients and writes one outbox row
  per (pusher, event) in the transaction, so a crash neither loses nor
  doubles a notification; its `AfterCommit` wakes the senders. `lead` runs
  one sender per pusher, which POSTs that pusher's oldest row, deletes it
  when the gateway took it, and backs off and retries on failure, so a dead
  gateway holds up its own pusher only, never the follower or the others.
  A crash between the POST and the delete sends that one notification again:
  at least once (the notification carries the event ID, so a client can drop
  the duplicate), never lost.
- **Notification emails**: the same shape, with a `send_after` time on each
  outbox row (the user may read the message first) and `lead` sending what
  is due.
- **E2EE device lists**: `handle` only: it writes the changed users' rows in
  the transaction.
- **Expiring mutes** (moderation/mute_expiry.py), like command expiry: the
  schedule is a projection of the log, `lead` rebuilds its timers from it,
  and the event it appends when a time comes is refused if already there.

A follower that fails on a batch retries it, backing off up to a minute; it
never skips an event, so one it cannot handle stops it there until fixed, and
its lag shows in the metrics (`statuses`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Protocol

import asyncpg

from homeserver.alarm import Alarm
from homeserver.events.model import Event
from homeserver.log.positions import FollowerPositions
from homeserver.store import followers as follower_store

log = logging.getLogger(__name__)

AfterCommit = Callable[[], Awaitable[None]]

# Positions one read looks ahead at most: a follower of rare types over a long
# log reads it in bounded steps, not in one statement that scans all of it.
READ_SPAN = 20_000
# A follower of rare types that read on without finding any records how far it
# got at most this often: a restart reads that stretch again, and finds nothing.
EMPTY_PROGRESS_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 60.0
WAKE_COALESCE_SECONDS = 0.02
STOP_SECONDS = 1.0
# How long a lease check may take, and a silent holder keep its leases, at least.
CHECK_TIMEOUT_SECONDS = 6.0
# How long a batch's transaction may wait on its process (a `handle` must not sit
# that long between statements): a holder frozen in the middle of a batch holds
# up the next one at most this long.
BATCH_IDLE_SECONDS = 10.0


class Start(enum.Enum):
    """Where a follower seen for the first time begins."""

    FIRST_EVENT = "first_event"  # every event of the log
    NOW = "now"  # the events appended from its first run on


class Follower(Protocol):
    @property
    def name(self) -> str:
        """Its name in `follower_positions`; never change it (the position is kept under it)."""
        ...

    @property
    def start(self) -> Start: ...

    @property
    def event_types(self) -> frozenset[str] | None:
        """The types it is given (None: every event)."""
        ...

    async def handle(self, conn: asyncpg.Connection, events: Sequence[Event]) -> AfterCommit | None:
        """Write the output for `events` with `conn`, in the transaction that records
        that they were handled."""
        ...

    async def lead(self) -> None:
        """Run while this process holds the lease; cancelled when it loses it."""
        ...


@dataclass(slots=True)
class FollowerStatus:
    """One follower as this process sees it, for the metrics."""

    name: str
    leading: bool = False  # this process holds the lease and runs it
    position: int = 0
    head: int = 0  # the last position of the log at its last read
    # origin_server_ts of the oldest event it read but has not handled yet.
    oldest_unhandled_ts: int | None = None

    @property
    def lag_events(self) -> int:
        return max(self.head - self.position, 0)

    def lag_seconds(self, now: float) -> float:
        if self.oldest_unhandled_ts is None:
            return 0.0
        return max(now - self.oldest_unhandled_ts / 1000, 0.0)


class _PositionMoved(Exception):
    """Another process moved the position: this one no longer holds the lease."""


class _LeaseLost(Exception):
    pass


@dataclass(slots=True)
class _Entry:
    follower: Follower
    status: FollowerStatus
    alarm: Alarm
    follower_id: int | None = None
    task: asyncio.Task[None] | None = None


@dataclass(eq=False)
class Followers:
    pool: asyncpg.Pool
    dsn: str
    _: KW_ONLY
    catch_up_seconds: float = 30.0
    lease_check_seconds: float = 2.0
    batch_size: int = 500
    clock: Callable[[], float] = time.time
    positions: FollowerPositions | None = None
    _entries: dict[str, _Entry] = field(default_factory=dict, init=False, repr=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    def add(self, follower: Follower) -> None:
        """Run `follower` (before `start`)."""
        if follower.name in self._entries:
            raise ValueError(f"two followers named {follower.name!r}")
        self._entries[follower.name] = _Entry(follower, FollowerStatus(follower.name), Alarm())

    def wake(self) -> None:
        """Something was committed: followers that wait look again."""
        for entry in self._entries.values():
            entry.alarm.ring()

    def statuses(self) -> list[FollowerStatus]:
        return [entry.status for entry in self._entries.values()]

    def start(self) -> None:
        if self._entries:
            self._task = asyncio.create_task(self._hold_leases(), name="follower-leases")

    async def stop(self) -> None:
        """Stop every follower this process runs, and hand its leases on."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # Leases

    async def _hold_leases(self) -> None:
        while True:
            conn: asyncpg.Connection | None = None
            try:
                # Ended by the server when it missed three checks.
                idle_ms = int(max(self.lease_check_seconds * 3, CHECK_TIMEOUT_SECONDS) * 1000)
                conn = await follower_store.connect_for_leases(self.dsn, idle_ms)
                lost = Alarm()
                conn.add_termination_listener(lambda _conn, ring=lost.ring: ring())
                await self._register(conn)
                while True:
                    wanted: dict[int, _Entry] = {}
                    for entry in self._entries.values():
                        if entry.task is not None and entry.task.done():
                            # Never meant to end: it is still ours, run it again.
                            error = None if entry.task.cancelled() else entry.task.exception()
                            log.error(
                                "follower %s ended (%r); starting it again",
                                entry.follower.name,
                                error,
                            )
                            self._lead(entry)
                        elif entry.task is None and entry.follower_id is not None:
                            wanted[entry.follower_id] = entry
                    # Also the check that the connection answers, so bounded in time.
                    async with asyncio.timeout(
                        max(self.lease_check_seconds * 2, CHECK_TIMEOUT_SECONDS)
                    ):
                        taken = await follower_store.take_leases(conn, wanted)
                    for follower_id in taken:
                        self._lead(wanted[follower_id])
                    if await lost.sleep(self.lease_check_seconds) or conn.is_closed():
                        raise _LeaseLost("the connection holding the leases closed")
            except asyncio.CancelledError:
                raise
            except Exception as error:
                _raise_if_cancelling()
                log.warning("follower leases: %r; taking them again", error)
            finally:
                await self._stop_leading()
                if conn is not None:
                    # Closing it releases the leases: another process takes them over.
                    conn.terminate()
            await asyncio.sleep(self.lease_check_seconds)

    async def _register(self, conn: asyncpg.Connection) -> None:
        now_ms = int(self.clock() * 1000)
        for entry in self._entries.values():
            follower = entry.follower
            entry.follower_id = await follower_store.register(
                conn, follower.name, follower.start is Start.NOW, now_ms
            )

    def _lead(self, entry: _Entry) -> None:
        log.info("follower %s: this process holds its lease and runs it", entry.follower.name)
        entry.status.leading = True
        entry.task = asyncio.create_task(self._run(entry), name=f"follower-{entry.follower.name}")

    async def _stop_leading(self) -> None:
        for entry in self._entries.values():
            task, entry.task = entry.task, None
            if task is not None:
                await _cancel_and_wait(task, f"follower {entry.follower.name}")
            entry.status.leading = False
            entry.status.oldest_unhandled_ts = None

    # Running one follower (while holding its lease)

    async def _run(self, entry: _Entry) -> None:
        leading = asyncio.create_task(self._keep_leading(entry.follower))
        try:
            await self._follow(entry)
        finally:
            await _cancel_and_wait(leading, f"the lead() of follower {entry.follower.name}")

    async def _keep_leading(self, follower: Follower) -> None:
        failures = 0
        while True:
            try:
                await follower.lead()
                return
            except Exception:
                _raise_if_cancelling()
                failures += 1
                log.exception("follower %s: its lead() failed; starting it again", follower.name)
                await asyncio.sleep(_backoff(failures))

    async def _follow(self, entry: _Entry) -> None:
        follower = entry.follower
        progress: _Progress | None = None
        failures = 0
        while True:
            try:
                if progress is None:
                    async with self.pool.acquire() as conn:
                        found = await follower_store.position(conn, follower.name)
                    progress = _Progress(found, found, time.monotonic())
                    entry.status.position = found
                caught_up, after = await self._step(entry, progress)
                failures = 0
            except _PositionMoved:
                _raise_if_cancelling()
                log.warning("follower %s: another process moved its position", follower.name)
                progress = None
                await asyncio.sleep(self.lease_check_seconds)
                continue
            except Exception:
                _raise_if_cancelling()
                failures += 1
                log.exception(
                    "follower %s: handling the events after %d failed (attempt %d)",
                    follower.name,
                    progress.position if progress is not None else -1,
                    failures,
                )
                await asyncio.sleep(_backoff(failures))
                continue
            if after is not None:
                try:
                    await after()
                except Exception:
                    log.exception("follower %s: its after-commit work failed", follower.name)
            if caught_up and await entry.alarm.sleep(self.catch_up_seconds):
                # Woken by a commit: a busy server commits hundreds of batches a
                # second, and one read a moment later serves all of them.
                await asyncio.sleep(WAKE_COALESCE_SECONDS)

    async def _step(self, entry: _Entry, progress: _Progress) -> tuple[bool, AfterCommit | None]:
        """Read and handle one batch; (whether it reached the head, the after-commit work)."""
        follower, status = entry.follower, entry.status
        types = sorted(follower.event_types) if follower.event_types is not None else None
        after: AfterCommit | None = None
        async with self.pool.acquire() as conn:
            piece = await follower_store.read_after(
                conn, progress.position, self.batch_size, READ_SPAN, types
            )
            status.head = max(piece.head, progress.position)
            if piece.events:
                status.oldest_unhandled_ts = piece.events[0].origin_server_ts
            record = bool(piece.events) or (
                piece.end > progress.persisted
                and time.monotonic() - progress.recorded_at >= EMPTY_PROGRESS_SECONDS
            )
            if record:
                async with conn.transaction():
                    # Its lock on the position would hold up the next holder for
                    # as long as a frozen process sat in it.
                    await follower_store.bound_idle_in_transaction(
                        conn, int(BATCH_IDLE_SECONDS * 1000)
                    )
                    now_ms = int(self.clock() * 1000)
                    if not await follower_store.advance(
                        conn, follower.name, progress.persisted, piece.end, now_ms
                    ):
                        raise _PositionMoved
                    if piece.events:
                        after = await follower.handle(conn, piece.events)
                progress.persisted = piece.end
                progress.recorded_at = time.monotonic()
                if self.positions is not None:
                    self.positions.recorded(follower.name, piece.end)
        # Past a stretch without events of its types, it moves on in memory and
        # records that only every EMPTY_PROGRESS_SECONDS.
        progress.position = status.position = piece.end
        status.oldest_unhandled_ts = None
        return piece.end >= piece.head, after


@dataclass(slots=True)
class _Progress:
    persisted: int  # the position in follower_positions
    position: int  # handled up to here; between the two were no events of its types
    recorded_at: float  # monotonic time `persisted` was last written


def _raise_if_cancelling() -> None:
    """Re-raise a cancel that became another error on the way (asyncpg leaving a
    transaction on a connection the server closed raises InterfaceError)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def _cancel_and_wait(task: asyncio.Task[None], what: str) -> None:
    # Cancelled again until it ends: a cancel that some code swallowed must not
    # leave it running without the lease, nor this process unable to take it again.
    while not task.done():
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=STOP_SECONDS)
        if not done:
            log.warning("%s did not stop when cancelled; cancelling it again", what)
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("%s ended with %r", what, error)


def _backoff(failures: int) -> float:
    return float(min(2 ** (failures - 1), MAX_BACKOFF_SECONDS))
