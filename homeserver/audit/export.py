"""Exporting the log (or one chain) to a JSON Lines file that verifies offline, with no database.

The file, one JSON object per line:

1. a header: `{"linkchat_audit_export": 1, "server_name": ..., "scope": "all" | {"room": ID},
   "exported_ts": ..., "verify_keys": {KEY_ID: {"key", "valid_from", "expired_ts"}}}`,
   every public key the server signed with and its validity window;
2. one line per event in stream order: `{"position": P, "event_id": ID, "event": {...}}`,
   the event exactly as the log holds it (its bytes are copied, never re-encoded), and
   for a room's event `"room_version"`, whose redaction algorithm and event ID format
   its signature and ID follow (the verifier holds it to the room's create event);
3. an end line: `{"end": {"events": N, "heads": {CHAIN: LAST_EVENT_ID}}}`, so a
   file cut short does not pass for a shorter log.

`verify_export` runs the same checks as `audit verify` on the database. A
whole-log export must have contiguous positions; a one-room export holds
positions with other chains' events between them, so only that positions
increase is checked there, and the chain's own continuity (each event names
the previous one, from the chain's first event) carries the proof.

The keys in the header prove that the file is consistent, not who wrote it:
compare them with the keys the server publishes (`GET /_matrix/key/v2/server`)
or pass trusted keys to `verify --file ... --keys FILE`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import asyncpg

from homeserver.audit.verify import (
    Failure,
    Line,
    LogVerifier,
    Verification,
    check_export_lines,
    verify_stream,
)
from homeserver.events.canonical import decode
from homeserver.events.signing import KeyRingError, PublicKey, public_keys_from_json
from homeserver.store import audit as audit_store
from homeserver.store import events as event_store

FORMAT_VERSION = 1
_END = '{"end"'
_LINES_PER_CHUNK = 5_000


@dataclass(frozen=True)
class ExportSummary:
    events: int
    chains: int
    keys: int = 0
    seconds: float = 0.0

    def summary(self, out: Path) -> str:
        return (
            f"exported {self.events} events of {self.chains} chains and {self.keys} public"
            f" keys to {out} in {self.seconds:.2f} s"
        )


async def export_to_file(
    pool: asyncpg.Pool,
    out: Path,
    server_name: str,
    keys: Mapping[str, PublicKey],
    room_id: str | None,
) -> ExportSummary:
    """`export_log` into the file `out` (replaced), timed."""
    started = time.monotonic()
    async with pool.acquire() as conn:
        # Plain writes: exporting is the one task of its process (or of its request).
        with open(out, "w", encoding="utf-8") as handle:  # noqa: ASYNC230
            written = await export_log(
                conn, handle, server_name, keys, room_id, int(time.time() * 1000)
            )
    return ExportSummary(written.events, written.chains, len(keys), time.monotonic() - started)


async def export_log(
    conn: asyncpg.Connection,
    out: TextIO,
    server_name: str,
    keys: Mapping[str, PublicKey],
    room_id: str | None,
    now_ms: int,
) -> ExportSummary:
    """Write the whole log, or the chain `room_id`, to `out` (one snapshot of the log)."""
    header = {
        "linkchat_audit_export": FORMAT_VERSION,
        "server_name": server_name,
        "scope": "all" if room_id is None else {"room": room_id},
        "exported_ts": now_ms,
        "verify_keys": {key_id: key.as_json() for key_id, key in sorted(keys.items())},
    }
    events = 0
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        until = await event_store.last_position(conn)
        out.write(json.dumps(header, sort_keys=True) + "\n")
        async for rows in audit_store.log_batches(conn, 0, room_id, until=until):
            out.writelines(
                f'{{"position":{position},"event_id":{json.dumps(event_id)},"event":{raw}'
                + (f',"room_version":{json.dumps(version)}' if version is not None else "")
                + "}\n"
                for position, event_id, raw, version in rows
            )
            events += len(rows)
        heads = await audit_store.chain_heads_at(conn, until)
    if room_id is not None:
        heads = {room_id: heads[room_id]} if room_id in heads else {}
    out.write(json.dumps({"end": {"events": events, "heads": heads}}, sort_keys=True) + "\n")
    return ExportSummary(events, len(heads))


@dataclass
class ExportVerification:
    verifier: LogVerifier
    scope: str  # "all" or the room ID
    failure: Failure | None
    seconds: float = 0.0

    def summary(self, path: Path, trusted: bool) -> str:
        """One line saying what verified, and how far a one-chain export proves it."""
        if self.scope == "all":
            note = "; positions contiguous"
        else:
            note = (
                f"; export of the chain {self.scope}: positions are not contiguous in a one-chain"
                " export (other chains' events sit between), so they were checked to increase"
                " and the chain to be continuous from its first event"
            )
        keys = "trusted keys" if trusted else "the export's own keys"
        verified = Verification(self.verifier, self.failure, self.seconds)
        return verified.summary(f"export {path}: ", f"{note}; keys: {keys}")


class ExportError(Exception):
    """The file is not an export (no header, unknown format)."""


def read_header(line: str) -> dict[str, Any]:
    try:
        header = decode(line)
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("linkchat_audit_export") != FORMAT_VERSION:
        raise ExportError(f"not an audit export (format {FORMAT_VERSION}): bad first line")
    if not isinstance(header.get("server_name"), str):
        raise ExportError("the export header names no server")
    return header


async def verify_export(
    path: Path, trusted_keys: Mapping[str, PublicKey] | None = None, workers: int | None = None
) -> ExportVerification:
    """Verify an export file: every event as `audit verify` does, then its end line."""
    started = time.monotonic()
    # Plain blocking reads: the auditor is the only task of its process, and a
    # thread hop per line would cost more than the read.
    with open(path, encoding="utf-8") as lines:  # noqa: ASYNC230
        header = read_header(lines.readline())
        try:
            keys = trusted_keys if trusted_keys is not None else public_keys_from_json(header)
        except KeyRingError as error:
            raise ExportError(f"the export header's keys: {error}") from None
        scope = header.get("scope")
        room_id = scope.get("room") if isinstance(scope, dict) else None
        verifier = LogVerifier(
            header["server_name"],
            keys,
            contiguous=room_id is None,
            last_position=0 if room_id is None else None,
            only_chain=room_id,
        )
        end: list[str] = []

        async def chunks() -> AsyncIterator[list[Line]]:
            chunk: list[Line] = []
            for number, line in enumerate(lines, start=2):
                if line.startswith(_END):
                    end.append(line)
                    break
                chunk.append((number, line))
                if len(chunk) == _LINES_PER_CHUNK:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk

        failure = await verify_stream(chunks(), verifier, workers, check_export_lines)
        if failure is None:
            failure = _check_end(verifier, end[0] if end else None, lines.read())
    return ExportVerification(verifier, room_id or "all", failure, time.monotonic() - started)


def _check_end(verifier: LogVerifier, end_line: str | None, rest: str) -> Failure | None:
    position = verifier.last_position or 0

    def fail(reason: str) -> Failure:
        return Failure(position, "(end of export)", "export", reason)

    if end_line is None:
        return fail("the export has no end line: the file was cut short")
    if rest.strip():
        return fail("there are lines after the end line")
    try:
        end = decode(end_line)["end"]
        events, heads = end["events"], end["heads"]
    except (ValueError, KeyError, TypeError):
        return fail("the end line is not {end: {events, heads}}")
    if events != verifier.checked:
        return fail(f"the end line counts {events} events, the file holds {verifier.checked}")
    if heads != verifier.heads:
        return fail("the chains do not end where the end line says (events cut off a chain?)")
    return None
