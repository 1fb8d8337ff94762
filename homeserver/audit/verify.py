"""Verifying the event log: every event's hashes, signature, chain link and position.

Two halves, so the expensive half can run on every core:

- `check_event` looks at one event alone: its content hash (or, for a purged
  event, that its content is exactly its redacted form), its event ID against
  its reference hash, and its signature by the server key named in it, which
  must have been valid at the event's `origin_server_ts`. One ed25519 check is
  ~70 µs, most of the cost; `verify_stream` runs these in a process pool, a
  chunk of events at a time, while the main process reads on.
- `LogVerifier.accept` takes those results in stream order and checks what
  needs the order: contiguous positions, the link of each event to the
  previous event of its chain, and that a purged event was redacted. It keeps
  only the head of each chain, so memory grows with the number of chains,
  never with the log; the pool has a bounded number of chunks in flight.

Results are consumed in order, so the failure reported is always the first
bad event in the log, whichever worker found it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import asyncpg

from homeserver.events.canonical import decode
from homeserver.events.hashing import content_hash, hash_event_id
from homeserver.events.model import JsonDict
from homeserver.events.redaction import redact_content
from homeserver.events.room_versions import (
    LEGACY,
    EventIdFormat,
    RoomVersion,
    of_create_content,
    room_version,
)
from homeserver.events.signing import (
    PublicKey,
    public_keys_from_json,
    signable_bytes,
    signature_matches,
)
from homeserver.store import audit as audit_store
from homeserver.store import events as event_store

# (stream position, event ID, logged JSON, room version): what the database gives per event.
Row = tuple[int, str, str, str | None]
# (line number, line): what an export file gives per event.
Line = tuple[int, str]


@dataclass(frozen=True)
class Failure:
    position: int
    event_id: str
    check: str
    reason: str

    def __str__(self) -> str:
        return f"event {self.event_id} at position {self.position}: {self.check}: {self.reason}"


class Checked(NamedTuple):
    """What the checks of one event alone found, for the checks that need the order."""

    position: int
    event_id: str
    room_id: str | None
    prev_events: Any
    key_id: str | None
    failure: tuple[str, str] | None  # (check, reason)
    purged: bool = False  # content removed by `admin purge-redacted`
    redacts: str | None = None
    # The room version the event was checked by (its room's, as the log's reader gave
    # it), and the version a create event names: the verifier holds the first to the
    # second, so no event passes by being checked under another version's rules.
    version: str | None = None
    creates: str | None = None


class _Keys:
    """Public keys with their nacl verify keys decoded once."""

    def __init__(self, server_name: str, keys: Mapping[str, PublicKey]) -> None:
        self.server_name = server_name
        self.keys = dict(keys)
        self.raw_keys = {key_id: bytes(key.verify_key()) for key_id, key in keys.items()}


def _is_purged_form(pdu: JsonDict, version: RoomVersion) -> bool:
    content = pdu.get("content")
    return isinstance(content, dict) and content == redact_content(pdu["type"], content, version)


def _event_id_problem(
    pdu: JsonDict, event_id: str, signed: bytes, version: RoomVersion, server_name: str
) -> str | None:
    if version.event_ids is EventIdFormat.LOCAL:
        # Versions 1 and 2: the ID is in the event (and signed with it), `$...:server`.
        if pdu.get("event_id") != event_id:
            return "the event ID is not the one the event carries"
        if not event_id.startswith("$") or event_id.partition(":")[2] != server_name:
            return f"the event ID is not of the form $local:{server_name}"
        return None
    if hash_event_id(hashlib.sha256(signed).digest(), version) != event_id:
        return _EVENT_ID
    return None


def check_event(
    position: int, event_id: str, pdu: JsonDict, keys: _Keys, version_id: str | None = None
) -> Checked:
    """Content hash, event ID and signature of one event (no order needed), by the rules
    of its room's version (`version_id`; LEGACY for chains that are no room).

    The hot path of the auditor (run once per event by the workers): one
    encoding for the content hash, one shared by the event ID and the
    signature, and the signature checked by libsodium on the raw key.
    """
    version = room_version(version_id) or LEGACY
    checked_as = version.identifier if version_id is not None else None
    try:
        hashes = pdu.get("hashes")
        purged = False
        if not isinstance(hashes, dict) or hashes.get("sha256") != content_hash(pdu):
            if not _is_purged_form(pdu, version):
                return _result(pdu, position, event_id, "content hash", _CONTENT_HASH)
            # Purged: the hash names content that is gone. What is left is
            # exactly the redacted form, which the signature covers.
            purged = True
        signed = signable_bytes(pdu, version)
        if problem := _event_id_problem(pdu, event_id, signed, version, keys.server_name):
            return _result(pdu, position, event_id, "event ID", problem)
        signatures = pdu.get("signatures", {}).get(keys.server_name)
        if not isinstance(signatures, dict) or not signatures:
            reason = f"no signature by {keys.server_name}"
            return _result(pdu, position, event_id, "signature", reason)
        ts = pdu.get("origin_server_ts")
        problem = ""
        for key_id, signature in sorted(signatures.items()):
            key = keys.keys.get(key_id)
            if key is None:
                problem = problem or f"signed by {key_id}, which is not a key of {keys.server_name}"
                continue
            if not isinstance(ts, int) or not key.covers(ts):
                window = f"[{key.valid_from}, {key.expired_ts or 'now'})"
                problem = (
                    f"signed by {key_id} at origin_server_ts {ts}, outside the key's validity"
                    f" {window}"
                )
                continue
            if isinstance(signature, str) and signature_matches(
                signed, signature, keys.raw_keys[key_id]
            ):
                redacts = (
                    pdu["content"].get("redacts", pdu.get("redacts"))
                    if pdu["type"] == _REDACTION
                    else None
                )
                redacted = redacts if isinstance(redacts, str) else None
                return _checked(pdu, position, event_id, key_id, None, purged, redacted, checked_as)
            problem = f"the signature by {key_id} does not verify"
        return _result(pdu, position, event_id, "signature", problem)
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        reason = f"not a well-formed event ({type(error).__name__}: {error})"
        return _result(pdu, position, event_id, "format", reason)


_REDACTION = "m.room.redaction"
_CREATE = "m.room.create"
_CONTENT_HASH = "the content does not match its sha256 hash"
_EVENT_ID = "the event ID is not the reference hash of the event"


def _result(pdu: JsonDict, position: int, event_id: str, check: str, reason: str) -> Checked:
    return _checked(pdu, position, event_id, None, (check, reason))


def _checked(
    pdu: JsonDict,
    position: int,
    event_id: str,
    key_id: str | None,
    failure: tuple[str, str] | None,
    purged: bool = False,
    redacts: str | None = None,
    version: str | None = None,
) -> Checked:
    room_id = pdu.get("room_id")
    room = room_id if isinstance(room_id, str) else None
    creates = None
    if pdu.get("type") == _CREATE and pdu.get("state_key") == "" and room is not None:
        creates = of_create_content(pdu.get("content")).identifier
    elif room is None and pdu.get("type") == _CREATE and event_id.startswith("$"):
        # A version 12 create event names no room: the room's ID is its own.
        room = "!" + event_id[1:]
        creates = of_create_content(pdu.get("content")).identifier
    return Checked(
        position,
        event_id,
        room,
        pdu.get("prev_events"),
        key_id,
        failure,
        purged,
        redacts,
        version,
        creates,
    )


def check_rows(rows: Sequence[Row], keys: _Keys) -> list[Checked]:
    checked: list[Checked] = []
    for position, event_id, raw, version in rows:
        try:
            pdu = decode(raw)
        except ValueError as error:
            checked.append(Checked(position, event_id, None, None, None, ("format", str(error))))
            continue
        if not isinstance(pdu, dict):
            failure = ("format", "the logged event is not a JSON object")
            checked.append(Checked(position, event_id, None, None, None, failure))
            continue
        checked.append(check_event(position, event_id, pdu, keys, version))
    return checked


def check_export_lines(lines: Sequence[Line], keys: _Keys) -> list[Checked]:
    """Export lines `{"position": P, "event_id": ID, "event": {...}}`, checked as the log is."""
    checked: list[Checked] = []
    for number, line in lines:
        try:
            entry = decode(line)
            position, event_id, pdu = entry["position"], entry["event_id"], entry["event"]
            version = entry.get("room_version")
            if not (isinstance(position, int) and isinstance(event_id, str)):
                raise ValueError("position or event_id of the wrong type")
            if version is not None and not isinstance(version, str):
                raise ValueError("room_version of the wrong type")
            if not isinstance(pdu, dict):
                raise ValueError("event is not an object")
        except (ValueError, KeyError, TypeError) as error:
            failure = ("format", f"line {number} is not an exported event ({error})")
            checked.append(Checked(number, f"(line {number})", None, None, None, failure))
            continue
        checked.append(check_event(position, event_id, pdu, keys, version))
    return checked


ChunkCheck = Callable[[Sequence[Any], _Keys], list[Checked]]

# Worker processes get the keys once, at start, not with every chunk.
_worker_keys: _Keys | None = None


def _start_worker(server_name: str, keys: dict[str, PublicKey]) -> None:
    global _worker_keys
    _worker_keys = _Keys(server_name, keys)


def _check_in_worker(check: ChunkCheck, chunk: list[Any]) -> list[Checked]:
    assert _worker_keys is not None
    return check(chunk, _worker_keys)


@dataclass
class LogVerifier:
    """Checks events in stream order; `accept` returns the first failure of one event.

    `contiguous`: positions must follow each other (the whole log); when only
    some chains are verified they need only increase.
    """

    server_name: str
    keys: Mapping[str, PublicKey]
    contiguous: bool = True
    last_position: int | None = None
    only_chain: str | None = None  # a one-chain export: every event must be of this chain
    heads: dict[str, str] = field(default_factory=dict)
    checked: int = 0
    purged: int = 0
    keys_used: set[str] = field(default_factory=set)
    # Purged events whose redaction has not been seen yet: event ID -> (position, chain).
    awaiting_redaction: dict[str, tuple[int, str]] = field(default_factory=dict)
    # The version each room's create event names, for the rooms whose create was seen.
    versions: dict[str, str] = field(default_factory=dict)
    _decoded: _Keys | None = field(default=None, repr=False)

    @property
    def decoded_keys(self) -> _Keys:
        if self._decoded is None:
            self._decoded = _Keys(self.server_name, self.keys)
        return self._decoded

    def check(self, position: int, event_id: str, pdu: JsonDict) -> Failure | None:
        """Every check of one event, in this process (small logs, tests)."""
        return self.accept(check_event(position, event_id, pdu, self.decoded_keys))

    def accept(self, event: Checked) -> Failure | None:
        position, event_id = event.position, event.event_id

        def fail(check: str, reason: str) -> Failure:
            return Failure(position, event_id, check, reason)

        last = self.last_position
        if last is not None:
            if self.contiguous and position != last + 1:
                return fail(
                    "position",
                    f"expected position {last + 1}, found {position}"
                    " (a gap, a deletion or a reordering)",
                )
            if not self.contiguous and position <= last:
                return fail("position", f"position {position} does not follow {last}")
        self.last_position = position
        if event.failure is not None:
            return fail(*event.failure)
        room_id = event.room_id
        if room_id is None:
            return fail("chain", "the event names no chain")
        if self.only_chain is not None and room_id != self.only_chain:
            return fail("chain", f"an event of {room_id} among the events of {self.only_chain}")
        expected = [self.heads[room_id]] if room_id in self.heads else []
        if event.prev_events != expected:
            return fail(
                "chain",
                f"prev_events is {event.prev_events}, expected {expected}"
                " (an event of this chain is missing, forged or out of order)",
            )
        if event.creates is not None:
            self.versions[room_id] = event.creates
        declared = self.versions.get(room_id)
        if declared is not None and event.version is not None and event.version != declared:
            return fail(
                "room version",
                f"checked as a room version {event.version} event, but its room's create"
                f" event names version {declared}",
            )
        self.heads[room_id] = event_id
        self.checked += 1
        if event.key_id is not None:
            self.keys_used.add(event.key_id)
        if event.purged:
            self.purged += 1
            self.awaiting_redaction[event_id] = (position, room_id)
        if event.redacts is not None:
            target = self.awaiting_redaction.get(event.redacts)
            if target is not None and target[1] == room_id:
                del self.awaiting_redaction[event.redacts]
        return None

    def finish(self) -> Failure | None:
        """After the last event: a purged event must have been redacted."""
        if not self.awaiting_redaction:
            return None
        event_id, (position, _) = min(self.awaiting_redaction.items(), key=lambda i: i[1][0])
        return Failure(
            position,
            event_id,
            "content hash",
            "the content does not match its sha256 hash, and it is the redacted form of an"
            " event that was never redacted (content removed without a redaction)",
        )


def _pool(server_name: str, keys: Mapping[str, PublicKey], workers: int) -> ProcessPoolExecutor:
    # forkserver: the workers must not inherit the event loop or database
    # sockets; it imports this module once, and each worker forks from it.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_start_worker,
        initargs=(server_name, dict(keys)),
    )


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


async def verify_stream(
    chunks: AsyncIterator[list[Any]],
    verifier: LogVerifier,
    workers: int | None = None,
    check: ChunkCheck = check_rows,
) -> Failure | None:
    """Feed `chunks` (in stream order) through `check` and `verifier`; the first failure, or None.

    With more than one chunk, the per-event checks run in a pool of `workers`
    processes (default: one per core) with at most two chunks per worker in
    flight; a log that fits in one chunk is checked here (no pool start-up).
    """
    workers = default_workers() if workers is None else workers
    iterator = aiter(chunks)
    first = await anext(iterator, None)
    second = await anext(iterator, None) if first is not None else None
    head = [chunk for chunk in (first, second) if chunk is not None]

    async def every_chunk() -> AsyncIterator[list[Any]]:
        for chunk in head:
            yield chunk
        async for chunk in iterator:
            yield chunk

    if second is None or workers < 1:
        async for chunk in every_chunk():
            if failure := _accept_all(verifier, check(chunk, verifier.decoded_keys)):
                return failure
        return verifier.finish()
    loop = asyncio.get_running_loop()
    executor: Executor = _pool(verifier.server_name, verifier.keys, workers)
    in_flight: deque[asyncio.Future[list[Checked]]] = deque()
    try:
        async for chunk in every_chunk():
            for start in range(0, len(chunk), _WORKER_CHUNK):
                piece = chunk[start : start + _WORKER_CHUNK]
                in_flight.append(loop.run_in_executor(executor, _check_in_worker, check, piece))
            # Reading the next chunk (a few ms) while two per worker are queued
            # never leaves a worker idle.
            while len(in_flight) > 2 * workers:
                if (failure := _accept_all(verifier, await in_flight.popleft())) is not None:
                    return failure
        while in_flight:
            if (failure := _accept_all(verifier, await in_flight.popleft())) is not None:
                return failure
        return verifier.finish()
    finally:
        for future in in_flight:
            future.cancel()
        executor.shutdown(wait=True, cancel_futures=True)


# Events per task sent to a worker: big enough that pickling and scheduling
# cost little per event, small enough to keep both workers busy.
_WORKER_CHUNK = 1_000


def _accept_all(verifier: LogVerifier, checked: list[Checked]) -> Failure | None:
    for event in checked:
        if (failure := verifier.accept(event)) is not None:
            return failure
    return None


async def verify_database(
    conn: asyncpg.Connection,
    verifier: LogVerifier,
    room_id: str | None = None,
    since: int = 0,
    workers: int | None = None,
    batch: int = 5_000,
) -> Failure | None:
    """Verify the log in the database (one chain with `room_id`, after `since`).

    One REPEATABLE READ snapshot: a server appending meanwhile changes nothing
    the check sees. At the end the chain heads found must be those the
    chain_heads projection names: events cut off the end of a chain leave no
    gap in positions, but a head that points past the log.
    """
    verifier.contiguous = room_id is None
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        until = await event_store.last_position(conn)
        if room_id is None:
            verifier.last_position = since  # the log starts at position 1
        if since:
            heads = await audit_store.chain_heads_at(conn, since)
            if room_id is None:
                verifier.heads = heads
            elif room_id in heads:
                verifier.heads = {room_id: heads[room_id]}
        batches = audit_store.log_batches(conn, since, room_id, batch, until)
        failure = await verify_stream(batches, verifier, workers)
        if failure is not None:
            return failure
        projected = await audit_store.projected_chain_heads(conn, room_id)
    for chain in sorted(set(projected) | set(verifier.heads)):
        found = verifier.heads.get(chain)
        expected, position = projected.get(chain, (None, 0))
        if found != expected:
            return Failure(
                position,
                str(expected or found),
                "chain head",
                f"chain {chain} ends at {found} in the log but at {expected} in the chain_heads"
                " projection (events cut off the end of the log, or a tampered projection)",
            )
    return None


@dataclass(frozen=True)
class Verification:
    """What verifying the log found: its first bad event, if any, and what was checked."""

    verifier: LogVerifier
    failure: Failure | None
    seconds: float

    def summary(self, what: str = "", note: str = "") -> str:
        """One line saying what verified, for `audit verify` and the admin API."""
        verifier = self.verifier
        keys = sorted(verifier.keys_used)
        purged = f", {verifier.purged} purged" if verifier.purged else ""
        rate = verifier.checked / self.seconds if self.seconds > 0 else 0.0
        return (
            f"ok: {what}{verifier.checked} events in {len(verifier.heads)} chains verified with"
            f" {len(keys)} key{'s' if len(keys) != 1 else ''} ({', '.join(keys) or 'none'})"
            f"{purged} in {self.seconds:.2f} s ({rate:,.0f} events/s){note}"
        )


async def verify_log(
    pool: asyncpg.Pool,
    server_name: str,
    keys: Mapping[str, PublicKey],
    room_id: str | None = None,
    since: int = 0,
    workers: int | None = None,
) -> Verification:
    """Verify the log in the database (one chain with `room_id`, after `since`)."""
    verifier = LogVerifier(server_name, keys)
    started = time.monotonic()
    async with pool.acquire() as conn:
        failure = await verify_database(conn, verifier, room_id, since, workers)
    return Verification(verifier, failure, time.monotonic() - started)


def trusted_keys(path: Path) -> dict[str, PublicKey]:
    """Public keys to trust: a key ring file or a saved `/_matrix/key/v2/server` answer."""
    return public_keys_from_json(json.loads(path.read_text()))
