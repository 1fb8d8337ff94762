"""The event model: what a client asks for (Draft) and what the log holds (Event).

An event lives in a chain. For a room the chain is the room ID (`!...`); facts
about a user account live in the chain named by the user ID (`@...`), facts
about an alias in the chain named by the alias (`#...`). The `room_id` field
names the chain in every case, so one append path and one hash chain serve all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from homeserver.errors import MatrixError

JsonDict = dict[str, Any]


@dataclass(frozen=True, slots=True)
class TxnKey:
    """A client's transaction ID, which makes a send idempotent per device."""

    user_id: str
    device_id: str
    txn_id: str


@dataclass(frozen=True, slots=True)
class Draft:
    """An event a client or service asks to append, before auth, hashing and signing."""

    room_id: str
    sender: str
    type: str
    content: JsonDict
    state_key: str | None = None
    txn: TxnKey | None = None

    @property
    def is_state(self) -> bool:
        return self.state_key is not None


# Errcode of a StateEdit whose state changed since it was read; the editor retries.
STATE_CHANGED = "LINKCHAT_STATE_CHANGED"


@dataclass(frozen=True, slots=True)
class StateEdit(Draft):
    """A state draft computed from the state event `replaces` (its ID; None: there was none).

    Refused (409 STATE_CHANGED) under the append lock, for every chain (see
    rooms/chain_rules.authorize), if another event has replaced that state
    since, so a read-modify-write such as a role change (one user's entry in
    m.room.power_levels) or a server-kept account data update (m.direct) can
    never overwrite a concurrent edit it did not see.
    """

    replaces: str | None = None


def state_changed(what: str) -> MatrixError:
    return MatrixError(409, STATE_CHANGED, f"{what} changed while being edited.")


@dataclass(frozen=True, slots=True)
class Event:
    """An event as the log holds it: signed, hashed, chained and positioned."""

    event_id: str
    room_id: str
    sender: str
    type: str
    state_key: str | None
    content: Mapping[str, Any]
    origin_server_ts: int
    depth: int
    prev_events: tuple[str, ...]
    stream_position: int
    pdu: JsonDict = field(repr=False, compare=False)
    # The canonical JSON the log holds, when already known (saves re-encoding).
    logged: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def is_state(self) -> bool:
        return self.state_key is not None

    @property
    def redacts(self) -> str | None:
        """The event a redaction targets (room v11 keeps it in content)."""
        if self.type != "m.room.redaction":
            return None
        target = self.content.get("redacts")
        return target if isinstance(target, str) else None

    @classmethod
    def from_pdu(
        cls, event_id: str, pdu: JsonDict, stream_position: int, logged: bytes | None = None
    ) -> Event:
        """Build from the logged JSON (which, as in Matrix v4+, has no event_id)."""
        return cls(
            event_id=event_id,
            room_id=pdu["room_id"],
            sender=pdu["sender"],
            type=pdu["type"],
            state_key=pdu.get("state_key"),
            content=pdu["content"],
            origin_server_ts=pdu["origin_server_ts"],
            depth=pdu["depth"],
            prev_events=tuple(pdu["prev_events"]),
            stream_position=stream_position,
            pdu=pdu,
            logged=logged,
        )
