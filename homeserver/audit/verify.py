"""Verifying the event log: every event's hashes, signature, chain link and position.

`LogVerifier` is fed events in stream order (from the database or an export)
and keeps only what the next check needs: the head of each chain and the last
position. Memory grows with the number of chains, never with the log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from homeserver.events.hashing import content_hash_matches, event_id_for
from homeserver.events.model import JsonDict
from homeserver.events.signing import verify_event_signature


@dataclass(frozen=True)
class Failure:
    position: int
    event_id: str
    check: str
    reason: str

    def __str__(self) -> str:
        return f"event {self.event_id} at position {self.position}: {self.check}: {self.reason}"


@dataclass
class LogVerifier:
    """Checks events in stream order; `check` returns the first failure of one event."""

    server_name: str
    verify_keys: dict[str, Any]  # key ID ("ed25519:...") -> nacl VerifyKey
    last_position: int | None = None
    heads: dict[str, str] = field(default_factory=dict)
    checked: int = 0

    def check(self, position: int, event_id: str, pdu: JsonDict) -> Failure | None:
        def fail(check: str, reason: str) -> Failure:
            return Failure(position, event_id, check, reason)

        if self.last_position is not None and position != self.last_position + 1:
            return fail(
                "position",
                f"expected position {self.last_position + 1}, found {position}"
                " (a gap, a deletion or a reordering)",
            )
        self.last_position = position
        if not content_hash_matches(pdu):
            return fail("content hash", "the content does not match its sha256 hash")
        if event_id_for(pdu) != event_id:
            return fail("event ID", "the event ID is not the reference hash of the event")
        signatures = pdu.get("signatures", {}).get(self.server_name, {})
        key_ids = [key_id for key_id in signatures if key_id in self.verify_keys]
        if not key_ids:
            return fail("signature", f"no signature by a known key of {self.server_name}")
        if not verify_event_signature(pdu, self.server_name, self.verify_keys[key_ids[0]]):
            return fail("signature", f"the signature by {key_ids[0]} does not verify")
        room_id = pdu.get("room_id")
        if not isinstance(room_id, str):
            return fail("chain", "the event names no chain")
        expected = [self.heads[room_id]] if room_id in self.heads else []
        if pdu.get("prev_events") != expected:
            return fail(
                "chain",
                f"prev_events is {pdu.get('prev_events')}, expected {expected}"
                " (an event of this chain is missing, forged or out of order)",
            )
        self.heads[room_id] = event_id
        self.checked += 1
        return None
