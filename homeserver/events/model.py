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
    """A client's transaction ID, which makes a request idempotent.

    The spec identifies a retransmission by the access token's device, the
    transaction ID and the request path; `scope` is that path's identity (see
    `for_path`). A key without it would take `send/!R2/...` with the ID
    `send/!R1/...` used for a retry of the first, and drop the second message.
    """

    user_id: str
    device_id: str
    txn_id: str
    scope: str

    @classmethod
    def for_path(
        cls, user_id: str, device_id: str, txn_id: str, endpoint: str, *params: str
    ) -> TxnKey:
        """The key of `PUT .../{endpoint}/{params...}/{txn_id}` from this device."""
        return cls(user_id, device_id, txn_id, txn_scope(endpoint, *params))


def txn_scope(endpoint: str, *params: str) -> str:
    """A request path without its version prefix and transaction ID, one way to
    write it: `send/!room:hs/m.room.message`, `redact/!room:hs/$event`,
    `sendToDevice/m.room_key`. Parameters are percent-escaped ('%' and '/'), as
    decoded path segments may hold a '/', so two paths never share a scope."""
    escaped = (param.replace("%", "%25").replace("/", "%2F") for param in params)
    return "/".join((endpoint, *escaped))


@dataclass(frozen=True, slots=True)
class Draft:
    """An event a client or service asks to append, before auth, hashing and signing.

    `origin_server_ts` is set only where the event must be known before it is
    appended: a room version 12 create event, whose reference hash is its room's ID.
    """

    room_id: str
    sender: str
    type: str
    content: JsonDict
    state_key: str | None = None
    txn: TxnKey | None = None
    origin_server_ts: int | None = None

    @property
    def is_state(self) -> bool:
        return self.state_key is not None


# Errcode of a StateEdit whose state changed since it was read; the editor retries.
STATE_CHANGED = "LINKCHAT_STATE_CHANGED"


@dataclass(frozen=True, slots=True)
class StateEdit(Draft):
    """A state draft computed from the state event `replaces` (its ID; None: there was none).

    Refused (409 STATE_CHANGED) under the append lock, for every chain (see
    log/rules.py), if another event has replaced that state
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
        """The event a redaction targets: in its content from room version 11, at the
        top level of the event before."""
        if self.type != "m.room.redaction":
            return None
        target = self.content.get("redacts", self.pdu.get("redacts"))
        return target if isinstance(target, str) else None

    @classmethod
    def from_pdu(
        cls, event_id: str, pdu: JsonDict, stream_position: int, logged: bytes | None = None
    ) -> Event:
        """Build from the logged JSON (which, as in Matrix v3+, has no event_id). A v12
        create event has no room ID either: the room's ID is its own, with `!`."""
        return cls(
            event_id=event_id,
            room_id=pdu["room_id"] if "room_id" in pdu else "!" + event_id[1:],
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
