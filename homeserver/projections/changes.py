"""What a reducer returns: row changes to projection tables, applied by store/.

Reducers stay pure: they describe changes, and store/ turns them into SQL in
the append transaction (live) or in a scratch schema (replay).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    key: tuple[str, ...]
    columns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Upsert:
    """Insert the row, or replace the row with the same key."""

    table: Table
    row: dict[str, Any]


@dataclass(frozen=True, slots=True)
class InsertIfAbsent:
    """Insert the row unless a row with the same key exists (first write wins)."""

    table: Table
    row: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Delete:
    table: Table
    key: dict[str, Any]


Change = Upsert | InsertIfAbsent | Delete


def key_of(change: Change) -> tuple[Any, ...]:
    values = change.key if isinstance(change, Delete) else change.row
    return tuple(values[column] for column in change.table.key)


CHAIN_HEADS = Table(
    "chain_heads", ("room_id",), ("room_id", "event_id", "depth", "stream_position")
)
ROOMS = Table(
    "rooms", ("room_id",), ("room_id", "creator", "room_version", "room_type", "stream_position")
)
CURRENT_STATE = Table(
    "current_state", ("room_id", "type", "state_key"), ("room_id", "type", "state_key", "event_id")
)
ROOM_MEMBERS = Table(
    "room_members",
    ("room_id", "user_id"),
    ("room_id", "user_id", "membership", "event_id", "stream_position"),
)
REDACTIONS = Table("redactions", ("redacts",), ("redacts", "redaction_id"))
EVENT_RELATIONS = Table(
    "event_relations",
    ("event_id",),
    ("event_id", "room_id", "relates_to", "rel_type", "type", "sender", "aggregation_key"),
)
ROOM_ALIASES = Table("room_aliases", ("alias",), ("alias", "room_id", "creator"))
USERS = Table("users", ("user_id",), ("user_id", "created_ts", "deactivated", "kind"))
DEVICES = Table(
    "devices", ("user_id", "device_id"), ("user_id", "device_id", "display_name", "created_ts")
)
FORGOTTEN_ROOMS = Table(
    "forgotten_rooms", ("user_id", "room_id"), ("user_id", "room_id", "stream_position")
)

RECEIPTS = Table(
    "receipts",
    ("room_id", "user_id", "receipt_type", "thread_id"),
    ("room_id", "user_id", "receipt_type", "thread_id", "event_id", "ts", "stream_position"),
)
ACCOUNT_DATA = Table(
    "account_data",
    ("user_id", "room_id", "type"),
    ("user_id", "room_id", "type", "content", "stream_position"),
)
USER_FILTERS = Table("user_filters", ("user_id", "filter_id"), ("user_id", "filter_id", "filter"))

ALL_TABLES: tuple[Table, ...] = (
    CHAIN_HEADS,
    ROOMS,
    CURRENT_STATE,
    ROOM_MEMBERS,
    REDACTIONS,
    EVENT_RELATIONS,
    ROOM_ALIASES,
    USERS,
    DEVICES,
    FORGOTTEN_ROOMS,
    RECEIPTS,
    ACCOUNT_DATA,
    USER_FILTERS,
)
