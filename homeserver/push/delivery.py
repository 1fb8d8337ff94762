"""Delivering the push outbox to gateways: one sender per pusher, in order, retried.

Runs in the push follower's `lead()` (push/sender.py), so in one process at a
time. When it starts it reads which pushers have rows waiting (the last holder
may have died with them in memory); after that, every batch the follower
commits hands its new rows over (`offer`), and a sender reads the database
again only when it fell behind (more than QUEUE_MAX rows waiting, or rows it
was not handed).

Each pusher's sender POSTs its oldest row, and only after the gateway took it
(2xx) the next: in order per pusher. A gateway down (connection refused, a
timeout, a 5xx or 429) is retried with exponential backoff up to
`max_backoff_seconds`, for as long as it takes: nothing is dropped, and the
other pushers go on meanwhile. A 4xx other than 429 will not get better: that
notification is dropped (logged). A gateway that lists the pushkey in
`rejected` deletes the pusher, and with it its rows.

Rows are deleted once sent, in batches: a crash in between sends those again
(at least once; the notification carries the event ID for a client to drop a
duplicate).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp
import asyncpg

from homeserver.store import push as push_store

log = logging.getLogger(__name__)

QUEUE_MAX = 1_000
READ_BATCH = 200
# A sender reads its pusher again this often, so one deleted (logout) stops soon.
PUSHER_RECHECK_SECONDS = 5.0
REAP_SECONDS = 0.1
REQUEST_TIMEOUT_SECONDS = 30.0
# Concurrent POSTs to one gateway host.
PER_HOST = 100
# The fields a pusher with `format: event_id_only` sends (the Push Gateway API).
EVENT_ID_ONLY = ("event_id", "room_id", "counts", "prio")


class Sent(enum.Enum):
    TAKEN = "taken"  # 2xx
    DROPPED = "dropped"  # a 4xx that retrying would not change
    REJECTED = "rejected"  # the gateway says the pushkey is dead
    FAILED = "failed"  # try again later


def request_body(
    pusher: push_store.PusherRow, notification: dict[str, Any], tweaks: dict[str, Any]
) -> dict[str, Any]:
    """What a pusher POSTs for one notification (the Push Gateway API)."""
    data = {key: value for key, value in pusher.data.items() if key != "url"}
    if pusher.data.get("format") == "event_id_only":
        notification = {k: v for k, v in notification.items() if k in EVENT_ID_ONLY}
    device = {"app_id": pusher.app_id, "pushkey": pusher.pushkey, "data": data, "tweaks": tweaks}
    return {"notification": {**notification, "devices": [device]}}


class Delivery:
    def __init__(self, pool: asyncpg.Pool, *, max_backoff_seconds: float = 600.0) -> None:
        self._pool = pool
        self._max_backoff = max_backoff_seconds
        self._senders: dict[int, _PusherSender] = {}
        self._done: list[int] = []
        # The last row sent per pusher: a new sender starts after it, as the row may
        # not be deleted yet.
        self.sent_upto: dict[int, int] = {}
        self._session: aiohttp.ClientSession | None = None
        # Until the outbox was read once, a new sender cannot know it was handed every
        # row of its pusher: it reads the outbox first.
        self._outbox_read = False

    @property
    def running(self) -> bool:
        return self._session is not None

    async def run(self) -> None:
        """Deliver until cancelled (the lease lost, the server stopping)."""
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=PER_HOST)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
        )
        try:
            async with self._pool.acquire() as conn:
                waiting = await push_store.pushers_with_outbox(conn)
            for pusher_id in waiting:
                self._sender(pusher_id, backlog=True)
            self._outbox_read = True
            while True:
                await asyncio.sleep(REAP_SECONDS)
                await self._reap()
        finally:
            senders, self._senders = list(self._senders.values()), {}
            for sender in senders:
                sender.task.cancel()
            for sender in senders:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sender.task
            with contextlib.suppress(Exception):
                await asyncio.shield(self._reap())
            session, self._session = self._session, None
            self._outbox_read = False
            await session.close()

    def offer(
        self,
        rows: Iterable[push_store.OutboxRow],
        pushers: Mapping[int, push_store.PusherRow] | None = None,
    ) -> None:
        """Rows the follower just committed (those of a pusher in seq order), and the
        pushers it read with them."""
        if self._session is None:
            return  # not leading: whoever leads next reads them from the outbox
        by_pusher: dict[int, list[push_store.OutboxRow]] = {}
        for row in rows:
            by_pusher.setdefault(row.pusher_id, []).append(row)
        for pusher_id, queued in by_pusher.items():
            # A new sender takes what it is handed: every older row of its pusher was
            # sent, or read when delivery started (and has a sender still).
            self._sender(pusher_id, backlog=not self._outbox_read).offer(
                queued, (pushers or {}).get(pusher_id)
            )

    def _sender(self, pusher_id: int, *, backlog: bool) -> _PusherSender:
        sender = self._senders.get(pusher_id)
        if sender is None or sender.closing:
            sender = _PusherSender(self, pusher_id, backlog, self.sent_upto.get(pusher_id, 0))
            self._senders[pusher_id] = sender
        return sender

    def _finished(self, sender: _PusherSender) -> None:
        if self._senders.get(sender.pusher_id) is sender:
            del self._senders[sender.pusher_id]

    def _sent(self, pusher_id: int, seq: int) -> None:
        self._done.append(seq)
        self.sent_upto[pusher_id] = seq

    async def _reap(self) -> None:
        if not self._done:
            return
        done, self._done = self._done, []
        try:
            async with self._pool.acquire() as conn:
                await push_store.delete_outbox(conn, done)
        except BaseException:
            self._done[:0] = done
            raise

    def backoff(self, failures: int) -> float:
        return float(min(2 ** (failures - 1), self._max_backoff))

    async def post(
        self, pusher: push_store.PusherRow, row: push_store.OutboxRow
    ) -> tuple[Sent, str]:
        assert self._session is not None
        url = pusher.data.get("url")
        if not isinstance(url, str):
            return Sent.DROPPED, "the pusher has no url"
        body = request_body(pusher, row.notification, row.tweaks)
        try:
            async with self._session.post(url, json=body) as reply:
                status = reply.status
                answer: Any = None
                if 200 <= status < 300:
                    with contextlib.suppress(aiohttp.ContentTypeError, ValueError):
                        answer = await reply.json()
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            return Sent.FAILED, repr(error)
        if 200 <= status < 300:
            rejected = answer.get("rejected") if isinstance(answer, dict) else None
            if isinstance(rejected, list) and pusher.pushkey in rejected:
                return Sent.REJECTED, "the gateway rejected the pushkey"
            return Sent.TAKEN, str(status)
        if 400 <= status < 500 and status != 429:
            return Sent.DROPPED, f"the gateway answered {status}"
        return Sent.FAILED, f"the gateway answered {status}"


class _PusherSender:
    def __init__(self, delivery: Delivery, pusher_id: int, backlog: bool, sent_upto: int) -> None:
        self.pusher_id = pusher_id
        self.closing = False
        self._delivery = delivery
        self._queue: deque[push_store.OutboxRow] = deque()
        self._last_seq = sent_upto  # rows up to here are queued or sent
        self._backlog = backlog  # rows may wait in the outbox that are not queued
        self.pusher: push_store.PusherRow | None = None
        self.checked = 0.0
        self.task = asyncio.create_task(self._run(), name=f"pusher-{pusher_id}")
        self.task.add_done_callback(lambda _task: delivery._finished(self))

    def offer(
        self, rows: list[push_store.OutboxRow], pusher: push_store.PusherRow | None = None
    ) -> None:
        if pusher is not None and self.pusher is None:
            # Read in the transaction that queued the rows: current enough to start with.
            self.pusher, self.checked = pusher, time.monotonic()
        if self._backlog:
            return  # it reads them from the outbox
        fresh = [row for row in rows if row.seq > self._last_seq]
        if len(self._queue) + len(fresh) > QUEUE_MAX:
            self._backlog = True
            return
        self._queue.extend(fresh)
        if fresh:
            self._last_seq = fresh[-1].seq

    async def _run(self) -> None:
        pool = self._delivery._pool
        failures = 0
        while True:
            if not self._queue:
                if self._backlog:
                    async with pool.acquire() as conn:
                        rows = await push_store.outbox_after(
                            conn, self.pusher_id, self._last_seq, READ_BATCH
                        )
                    self._backlog = len(rows) == READ_BATCH
                    self._queue.extend(rows)
                    if rows:
                        self._last_seq = rows[-1].seq
                        continue
                # Nothing waits: the next rows start a new sender (no await from here).
                self.closing = True
                return
            pusher = self.pusher
            if pusher is None or time.monotonic() - self.checked > PUSHER_RECHECK_SECONDS:
                async with pool.acquire() as conn:
                    pusher = self.pusher = await push_store.pusher(conn, self.pusher_id)
                self.checked = time.monotonic()
                if pusher is None:
                    self.closing = True
                    return  # deleted (its token is gone): its rows went with it
            row = self._queue[0]
            outcome, why = await self._delivery.post(pusher, row)
            if outcome is Sent.FAILED:
                failures += 1
                delay = self._delivery.backoff(failures)
                log.warning(
                    "pusher %d: %s; trying again in %.0f s (attempt %d)",
                    self.pusher_id,
                    why,
                    delay,
                    failures,
                )
                await asyncio.sleep(delay)
                continue
            failures = 0
            if outcome is Sent.REJECTED:
                log.info("pusher %d: %s; deleting the pusher", self.pusher_id, why)
                async with pool.acquire() as conn:
                    await push_store.delete_pusher(conn, self.pusher_id)
                self.closing = True
                return
            if outcome is Sent.DROPPED:
                log.warning("pusher %d: notification %d dropped: %s", self.pusher_id, row.seq, why)
            self._queue.popleft()
            self._delivery._sent(self.pusher_id, row.seq)
