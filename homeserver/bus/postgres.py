"""The PostgreSQL bus: LISTEN/NOTIFY on the server's own database, for several
processes without Redis.

Why PostgreSQL: every process already talks to it (the quick start embeds
one), so `--workers 2` needs no other service, and a NOTIFY is delivered to
every listening session of the database, in the order sent. Redis stays the
bus when configured: it also holds the shared typing, presence and rate-limit
state, and its pub/sub does not ride on the connections that appends need.

- One connection listens, one publishes. Publishes that arrive while one is in
  flight go together in the next statement (one round trip for all, as appends
  are group-committed); `publish` only queues, so a caller never waits for it,
  and the queue is bounded (a hint dropped past it is logged and counted).
- A NOTIFY payload holds at most 8,000 bytes. A longer message goes as
  fragments in one statement, hence one transaction: they arrive together and
  in order, or not at all, and the listener joins them.
- When the listening connection is lost (PostgreSQL restarting), messages sent
  meanwhile are lost: the bus reconnects with backoff and then calls the
  `on_resumed` callbacks, so subscribers catch up from the log by position and
  drop what they cached.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable

import asyncpg

from homeserver.bus.base import Handler
from homeserver.bus.local import deliver

log = logging.getLogger(__name__)

# Characters per fragment: at most 4 bytes each in UTF-8, well under 8,000 bytes.
FRAGMENT_CHARS = 1_900
WHOLE = "="
FRAGMENT = "#"
# Messages waiting to be published; past this the oldest is dropped (they are hints).
MAX_PENDING = 10_000
# Half-joined fragmented messages kept (a sender that died midway never finishes one).
MAX_PARTIAL = 64
# How often a quiet listening connection is checked, and how long a check may take.
KEEPALIVE_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 5.0


def encode(message: str, message_id: str) -> list[str]:
    """The payloads one message is sent as: itself, or numbered fragments."""
    if len(message) <= FRAGMENT_CHARS:
        return [WHOLE + message]
    chunks = [message[i : i + FRAGMENT_CHARS] for i in range(0, len(message), FRAGMENT_CHARS)]
    return [f"{FRAGMENT}{message_id}:{n}:{len(chunks)}:{chunk}" for n, chunk in enumerate(chunks)]


class Fragments:
    """Joins fragmented payloads back into messages."""

    def __init__(self) -> None:
        self._partial: OrderedDict[str, list[str]] = OrderedDict()

    def add(self, payload: str) -> str | None:
        """The whole message once `payload` completes one, else None."""
        if payload.startswith(WHOLE):
            return payload[1:]
        header, number, total, text = payload[1:].split(":", 3)
        parts = self._partial.setdefault(header, [])
        if int(number) != len(parts):
            # A fragment missing (cannot happen within one transaction): drop the message.
            self._partial.pop(header, None)
            return None
        parts.append(text)
        if len(parts) == int(total):
            del self._partial[header]
            return "".join(parts)
        while len(self._partial) > MAX_PARTIAL:
            self._partial.popitem(last=False)
        return None


class PostgresBus:
    def __init__(self, dsn: str, prefix: str = "linkchat.") -> None:
        self._dsn = dsn
        self._prefix = prefix
        self._handlers: dict[str, list[Handler]] = {}
        self._resumed: list[Callable[[], None]] = []
        self._fragments = Fragments()
        self._ids = itertools.count()
        self._origin = secrets.token_hex(4)
        self._pending: deque[tuple[str, str]] = deque()
        self._sender: asyncio.Task[None] | None = None
        self._publisher: asyncpg.Connection | None = None
        self._listener: asyncio.Task[None] | None = None
        self._started = asyncio.Event()
        self.connected = False
        self.dropped = 0

    # The Bus protocol

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="postgres-bus")
        # Serve only once listening: a process that misses the first commits of the
        # others would answer its long-polls late. If PostgreSQL is away, start anyway.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._started.wait(), CONNECT_TIMEOUT_SECONDS * 2)

    async def stop(self) -> None:
        for task in (self._sender, self._listener):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._publisher is not None:
            with contextlib.suppress(Exception):
                await self._publisher.close(timeout=2)

    def subscribe(self, channel: str, handler: Handler) -> None:
        """Subscribe before start(); channels are fixed for the life of the bus."""
        self._handlers.setdefault(channel, []).append(handler)

    def on_resumed(self, callback: Callable[[], None]) -> None:
        self._resumed.append(callback)

    async def publish(self, channel: str, message: str) -> None:
        message_id = f"{self._origin}.{next(self._ids)}"
        for payload in encode(message, message_id):
            self._pending.append((self._prefix + channel, payload))
        while len(self._pending) > MAX_PENDING:
            self._pending.popleft()
            self.dropped += 1
        if self._sender is None:
            self._sender = asyncio.create_task(self._send(), name="postgres-bus-publish")

    # Publishing

    async def _send(self) -> None:
        try:
            while self._pending:
                batch = list(self._pending)
                self._pending.clear()
                try:
                    conn = await self._publishing_connection()
                    await conn.execute(
                        "SELECT pg_notify(c, m) FROM unnest($1::text[], $2::text[]) AS t(c, m)",
                        [channel for channel, _ in batch],
                        [payload for _, payload in batch],
                        timeout=CONNECT_TIMEOUT_SECONDS,
                    )
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as e:
                    self.dropped += len(batch)
                    log.warning("bus: could not publish %d messages: %s", len(batch), e)
                    await self._drop_publisher()
        finally:
            self._sender = None

    async def _publishing_connection(self) -> asyncpg.Connection:
        if self._publisher is None or self._publisher.is_closed():
            self._publisher = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT_SECONDS)
        return self._publisher

    async def _drop_publisher(self) -> None:
        if self._publisher is not None:
            self._publisher.terminate()
            self._publisher = None

    # Listening

    async def _listen(self) -> None:
        backoff = 0.1
        was_connected = False
        while True:
            conn: asyncpg.Connection | None = None
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT_SECONDS)
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                for channel in self._handlers or {"_": []}:
                    await conn.add_listener(self._prefix + channel, self._on_notification)
                self.connected = True
                self._started.set()
                backoff = 0.1
                if was_connected:
                    log.warning("bus: PostgreSQL reachable again; catching up from the log")
                    self._resume()
                was_connected = True
                while not conn.is_closed():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), KEEPALIVE_SECONDS)
                    if lost.is_set():
                        break
                    await conn.execute("SELECT 1", timeout=CONNECT_TIMEOUT_SECONDS)
            except asyncio.CancelledError:
                if conn is not None:
                    conn.terminate()
                raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as e:
                if self.connected or not was_connected:
                    log.warning("bus: PostgreSQL unreachable (%s); retrying", e)
            if self.connected:
                log.warning("bus: lost the listening connection; reconnecting")
            self.connected = False
            if conn is not None:
                conn.terminate()
            await asyncio.sleep(backoff)
            backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)

    def _resume(self) -> None:
        for callback in self._resumed:
            try:
                callback()
            except Exception:
                log.exception("bus resume callback failed")

    def _on_notification(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        message = self._fragments.add(payload)
        if message is not None:
            deliver(self._handlers.get(channel[len(self._prefix) :], ()), message)
