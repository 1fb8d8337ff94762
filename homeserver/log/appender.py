"""The one write path: every durable change is an event appended here.

One `Appender` task per process takes drafts from a bounded queue and writes
them in batches (group commit): many concurrent sends share one transaction,
one lock and one fsync. Authorization runs inside the batch, under the append
lock, against the state the batch itself is building, so two concurrent
power-level changes can never both pass against a stale state.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import asyncpg

from homeserver import logs
from homeserver.errors import MatrixError, forbidden, not_found, too_large, unavailable, unknown
from homeserver.events import types
from homeserver.events.live_keys import LiveKeyRing
from homeserver.events.model import Draft, Event, TxnKey
from homeserver.events.sealing import chain_version, seal, unsigned_pdu
from homeserver.events.signing import ServerKey
from homeserver.events.validation import (
    annotation_of,
    check_draft_fields,
    check_draft_values,
)
from homeserver.log.rules import ChainRules, Facts
from homeserver.projections import project
from homeserver.projections import room_state as room_state_reducer
from homeserver.projections.room_state import RoomState
from homeserver.store import chains
from homeserver.store import events as event_store
from homeserver.store.database import is_unavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Committed:
    """A committed batch as the appender hands it to its listeners: its new events, in
    position order, and the transaction key each was sent with (event ID -> key; only
    events sent with one), so no listener needs to read either back."""

    events: Sequence[Event]
    txns: Mapping[str, TxnKey]


AppendListener = Callable[[Committed], None]

MAX_EVENT_BYTES = 65_536
# Events waiting for the appender, at most (limits.append_queue_events).
QUEUE_EVENTS = 1_000


@dataclass
class _Request:
    drafts: Sequence[Draft]
    done: asyncio.Future[list[Event]]
    # The HTTP request it serves (logs.py): the appender's task logs on its behalf.
    request_id: str | None = field(default_factory=logs.request_id.get)


class Appender:
    def __init__(
        self,
        pool: asyncpg.Pool,
        key: ServerKey | LiveKeyRing,
        rules: ChainRules,
        *,
        max_batch: int = 1000,
        queue_events: int = QUEUE_EVENTS,
        state_cache_size: int = 10_000,
        max_event_bytes: int = MAX_EVENT_BYTES,
    ) -> None:
        self._pool = pool
        self._session = event_store.AppendSession(pool)
        # A live ring is re-read before each batch, so a rotation needs no restart.
        self._live_keys = key if isinstance(key, LiveKeyRing) else None
        self._key = key.current if isinstance(key, LiveKeyRing) else key
        self._rules = rules
        self._max_batch = max_batch
        # Bounded by events, not requests (a group may hold many): past the bound a
        # request is refused at once (503, Retry-After) instead of waiting its turn.
        # A queue that only grows makes every accepted write late and memory grow;
        # refusing keeps the accepted ones at their normal latency.
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._queue_events = queue_events
        self.queued_events = 0
        self.refused = 0
        self._states: OrderedDict[str, RoomState] = OrderedDict()
        self._state_cache_size = state_cache_size
        self._max_event_bytes = max_event_bytes
        self._listeners: list[AppendListener] = []
        self._task: asyncio.Task[None] | None = None
        self.batches_written = 0

    def add_listener(self, listener: AppendListener) -> None:
        """Called with each committed batch, in commit order."""
        self._listeners.append(listener)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="appender")

    def observe(self, events: Sequence[Event]) -> None:
        """Committed events read from the log, in position order (mostly other
        processes'): each that directly follows a cached chain state is folded into
        it, so this process's next batch in that chain need not read the state again
        (with several workers they take turns in the same rooms). Anything else is
        left to the head check in `_BatchPlan.load`."""
        for event in events:
            cached = self._states.get(event.room_id)
            if cached is not None and cached.head is not None:
                if event.prev_events == (cached.head.event_id,):
                    self._states[event.room_id] = room_state_reducer.apply(cached, event)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self._session.close()
        while not self._queue.empty():
            request = self._queue.get_nowait()
            self.queued_events -= len(request.drafts)
            if not request.done.done():
                request.done.set_exception(unknown("server is shutting down", 503))

    async def append(self, draft: Draft) -> Event:
        return (await self.append_group([draft]))[0]

    async def append_group(self, drafts: Sequence[Draft]) -> list[Event]:
        """Append drafts together: all are accepted in order, or none is."""
        if self.queued_events and self.queued_events + len(drafts) > self._queue_events:
            self.refused += 1
            raise unavailable("The server is busy; try again.")
        done: asyncio.Future[list[Event]] = asyncio.get_running_loop().create_future()
        self.queued_events += len(drafts)
        self._queue.put_nowait(_Request(drafts, done))
        # A client hanging up abandons the wait, never the write.
        return await asyncio.shield(done)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self.queued_events -= sum(len(request.drafts) for request in batch)
            if self._live_keys is not None:
                self._key = await self._live_keys.refresh()
            try:
                await self._write(batch)
            except Exception as error:
                self._states.clear()
                if is_unavailable(error):
                    # PostgreSQL away: every request would fail alike. Each client
                    # retries (same transaction ID: nothing doubled if this landed).
                    log.warning(
                        "append batch of %d requests: database unavailable (%r)",
                        len(batch),
                        error,
                    )
                    for request in batch:
                        self._fail(request, error)
                    continue
                log.exception(
                    "append batch of %d requests failed (request IDs: %s)",
                    len(batch),
                    " ".join(str(request.request_id) for request in batch),
                )
                if len(batch) == 1:
                    self._fail(batch[0], error)
                    continue
                # One request PostgreSQL refuses must not fail the others that
                # happened to share its batch: write each alone.
                for request in batch:
                    try:
                        await self._write([request])
                    except Exception as alone:
                        with logs.serving(request.request_id):
                            log.exception("append request failed on its own")
                        self._states.clear()
                        self._fail(request, alone)

    @staticmethod
    def _fail(request: _Request, error: Exception) -> None:
        if not request.done.done():
            if is_unavailable(error):
                request.done.set_exception(unavailable("The database is unavailable; try again."))
            else:
                request.done.set_exception(unknown("could not store event"))

    async def _write(self, batch: list[_Request]) -> None:
        # Round trips, not rows, are what a batch costs on a busy server: each is a
        # turn of an event loop that is also answering syncs. So: lock (carried by
        # the last batch's commit when this one was waiting), read, write, commit.
        conn = await self._session.begin()
        try:
            plan = await _BatchPlan.load(conn, batch, self._states, self._rules)
            position = plan.position
            outcomes: list[list[Event] | MatrixError] = []
            for request in batch:
                try:
                    events, position = self._accept(plan, request.drafts, position)
                except MatrixError as refusal:
                    outcomes.append(refusal)
                    continue
                outcomes.append(events)
            if plan.new_events:
                await event_store.write_batch(
                    conn,
                    plan.new_events,
                    plan.new_txns,
                    [change for event in plan.new_events for change in project(event)],
                )
        except BaseException as error:
            await self._session.abort(error)
            raise
        try:
            await self._session.commit(then_lock=not self._queue.empty())
        except BaseException as error:
            await self._session.abort(error)
            if not isinstance(error, Exception):
                raise  # cancelled: shutting down
            # The COMMIT may have landed and only what followed it failed (the next
            # batch's lock, or the connection before the answer came): then the
            # batch is written, and writing it again would duplicate it.
            if plan.new_events and not await self._landed(plan.new_events[-1]):
                raise
            log.warning("append commit reported %r, but the batch is in the log", error)
        self.batches_written += 1
        self._remember(plan.states)
        for request, outcome in zip(batch, outcomes, strict=True):
            if request.done.done():
                continue
            if isinstance(outcome, MatrixError):
                request.done.set_exception(outcome)
            else:
                request.done.set_result(outcome)
        if plan.new_events:
            committed = Committed(
                plan.new_events, {event_id: txn for txn, event_id in plan.new_txns}
            )
            for listener in self._listeners:
                try:
                    listener(committed)
                except Exception:
                    log.exception("append listener failed")

    async def _landed(self, event: Event) -> bool:
        async with self._pool.acquire() as conn:
            return await event_store.event_by_id(conn, event.event_id) is not None

    def _accept(
        self, plan: _BatchPlan, drafts: Sequence[Draft], position: int
    ) -> tuple[list[Event], int]:
        """Authorize and build one group's events; on refusal the plan is left unchanged."""
        saved_states = {draft.room_id: plan.states[draft.room_id] for draft in drafts}
        saved_facts = plan.facts
        accepted: list[Event] = []
        fresh: list[tuple[Draft, Event]] = []
        added_annotations: list[tuple[str, str, str]] = []
        try:
            for draft in drafts:
                if draft.txn is not None and (earlier := plan.by_txn.get(draft.txn)) is not None:
                    accepted.append(earlier)
                    continue
                check_draft_fields(draft.type, draft.state_key)
                # Every draft, not only what clients send as events: account data,
                # tags and profiles are facts in the log, hashed and signed as events.
                check_draft_values(draft.type, draft.content)
                state = plan.states[draft.room_id]
                self._rules.authorize(state, draft, plan.redacted_sender(draft), plan.facts)
                if (annotation := plan.annotation(draft)) is not None:
                    if annotation in plan.annotations:
                        raise MatrixError(
                            400, "M_DUPLICATE_ANNOTATION", "You already reacted with this key."
                        )
                    plan.annotations.add(annotation)
                    added_annotations.append(annotation)
                event = self._build(state, draft, position + len(fresh) + 1)
                plan.states[draft.room_id] = room_state_reducer.apply(state, event)
                plan.facts = plan.facts.accepted(event)
                plan.senders[event.event_id] = (event.sender, event.room_id)
                if draft.txn is not None:
                    plan.by_txn[draft.txn] = event
                accepted.append(event)
                fresh.append((draft, event))
        except MatrixError:
            plan.states.update(saved_states)
            plan.facts = saved_facts
            plan.annotations.difference_update(added_annotations)
            for draft, event in fresh:
                plan.senders.pop(event.event_id, None)
                if draft.txn is not None:
                    del plan.by_txn[draft.txn]
            raise
        plan.new_events.extend(event for _, event in fresh)
        plan.new_txns.extend((d.txn, e.event_id) for d, e in fresh if d.txn is not None)
        position += len(fresh)
        return accepted, position

    def _build(self, state: RoomState, draft: Draft, position: int) -> Event:
        version = chain_version(state, draft)
        pdu = unsigned_pdu(draft, state.head, version)
        event_id, logged = seal(pdu, self._key, version)
        if len(logged) > self._max_event_bytes:
            raise too_large(f"event is larger than {self._max_event_bytes} bytes")
        if "room_id" not in pdu and "!" + event_id[1:] != draft.room_id:
            # Rule 2 of room version 12: the room's ID is its create event's.
            raise forbidden("The room ID is not the reference hash of its create event.")
        return Event.from_pdu(event_id, pdu, position, logged)

    def _remember(self, states: dict[str, RoomState]) -> None:
        for room_id, state in states.items():
            self._states[room_id] = state
            self._states.move_to_end(room_id)
        while len(self._states) > self._state_cache_size:
            self._states.popitem(last=False)


@dataclass
class _BatchPlan:
    """What one batch reads before it decides, and what it has decided so far."""

    position: int  # the last stream position in the log
    states: dict[str, RoomState]
    by_txn: dict[TxnKey, Event]
    senders: dict[str, tuple[str, str]]  # event ID -> (sender, room)
    annotations: set[tuple[str, str, str]]
    facts: Facts
    new_events: list[Event] = field(default_factory=list)
    new_txns: list[tuple[TxnKey, str]] = field(default_factory=list)

    @staticmethod
    def annotation(draft: Draft) -> tuple[str, str, str] | None:
        """(sender, target, key) of a reaction, which may exist once per sender."""
        found = annotation_of(draft.type, draft.content)
        return (draft.sender, *found) if found is not None else None

    def redacted_sender(self, draft: Draft) -> str | None:
        """The sender of the event a redaction targets, which must be in the same room."""
        if draft.type != types.REDACTION or not types.is_room_chain(draft.room_id):
            return None
        target = draft.content.get("redacts")
        found = self.senders.get(target) if isinstance(target, str) else None
        if found is None or found[1] != draft.room_id:
            raise not_found("The event to redact is not in this room.")
        return found[0]

    @classmethod
    async def load(
        cls,
        conn: asyncpg.Connection,
        batch: list[_Request],
        cache: OrderedDict[str, RoomState],
        rules: ChainRules,
    ) -> _BatchPlan:
        drafts = [draft for request in batch for draft in request.drafts]
        room_ids = list(dict.fromkeys(draft.room_id for draft in drafts))
        txn_keys = [draft.txn for draft in drafts if draft.txn is not None]
        read = await event_store.read_append_heads(conn, room_ids, txn_keys)
        states: dict[str, RoomState] = {}
        for room_id in room_ids:
            cached = cache.get(room_id)
            head = read.heads.get(room_id)
            if cached is not None and cached.head == head:
                states[room_id] = cached
            else:
                states[room_id] = await chains.load_state(conn, room_id, head)
        known = read.txns
        targets = [
            draft.content["redacts"]
            for draft in drafts
            if draft.type == types.REDACTION and isinstance(draft.content.get("redacts"), str)
        ]
        wanted = list(known.values()) + targets
        found = await event_store.events_by_ids(conn, wanted) if wanted else {}
        by_txn = {key: found[event_id] for key, event_id in known.items() if event_id in found}
        senders = {event_id: (event.sender, event.room_id) for event_id, event in found.items()}
        wanted_annotations = [a for d in drafts if (a := cls.annotation(d)) is not None]
        annotations = await event_store.live_annotations(conn, wanted_annotations)
        facts = await rules.load_facts(conn, drafts)
        return cls(read.position, states, by_txn, senders, annotations, facts)
