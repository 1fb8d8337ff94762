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
USERS = Table("users", ("user_id",), ("user_id", "created_ts", "deactivated", "kind", "erased"))
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
# Friends and blocks (projections/friends.py), from the account chains.
FRIEND_RELATIONS = Table(
    "friend_relations",
    ("user_id", "other_id"),
    ("user_id", "other_id", "relation", "message", "ts", "room_id", "stream_position"),
)
USER_BLOCKS = Table(
    "user_blocks", ("user_id", "blocked_id"), ("user_id", "blocked_id", "ts", "stream_position")
)

# Media (homeserver/media): one row per uploaded file.
MEDIA = Table(
    "media",
    ("media_id",),
    (
        "media_id",
        "user_id",
        "content_type",
        "filename",
        "size",
        "sha256",
        "created_ts",
        "event_id",
        "stream_position",
    ),
)

# Search and the public room directory (projections/search.py, room_directory.py).
EVENT_SEARCH = Table(
    "event_search",
    ("event_id",),
    ("event_id", "room_id", "stream_position", "sender", "type", "key", "value", "contains_url"),
)
ROOM_DIRECTORY = Table(
    "room_directory", ("room_id",), ("room_id", "published_by", "stream_position")
)

# Device rooms and their commands (projections/device_control.py).
LINKCHAT_DEVICES = Table(
    "linkchat_devices",
    ("device_user_id",),
    ("device_user_id", "owner_id", "room_id", "display_name", "created_ts", "stream_position"),
)
DEVICE_COMMANDS = Table(
    "device_commands",
    ("command_id",),
    (
        "command_id",
        "room_id",
        "sender",
        "action",
        "args",
        "ttl_ms",
        "sent_ts",
        "expires_ts",
        "stream_position",
    ),
)
DEVICE_COMMAND_STATUS = Table(
    "device_command_status",
    ("room_id", "command_id"),
    ("room_id", "command_id", "status", "event_id", "updated_ts", "stream_position"),
)
DEVICE_COMMAND_RESULTS = Table(
    "device_command_results",
    ("event_id",),
    (
        "event_id",
        "command_id",
        "room_id",
        "sender",
        "status",
        "output",
        "error",
        "ts",
        "stream_position",
    ),
)

# Profiles and the user directory (projections/profiles.py).
PROFILES = Table("profiles", ("user_id",), ("user_id", "displayname", "avatar_url"))
USER_DIRECTORY_PUBLIC_ROOMS = Table(
    "user_directory_public_rooms", ("room_id", "reason"), ("room_id", "reason")
)

# End-to-end encryption keys and signatures, and when each user's device list
# last changed (projections/e2ee.py).
E2E_DEVICE_KEYS = Table(
    "e2e_device_keys",
    ("user_id", "device_id"),
    ("user_id", "device_id", "key_json", "stream_position"),
)
E2E_CROSS_SIGNING_KEYS = Table(
    "e2e_cross_signing_keys",
    ("user_id", "usage"),
    ("user_id", "usage", "key_id", "key_json", "stream_position"),
)
E2E_SIGNATURES = Table(
    "e2e_signatures",
    ("signer_id", "key_id", "target_user_id", "target_key_id"),
    ("signer_id", "key_id", "target_user_id", "target_key_id", "signature", "stream_position"),
)
DEVICE_LIST_CHANGES = Table("device_list_changes", ("user_id",), ("user_id", "stream_position"))
USER_THREEPIDS = Table(
    "user_threepids",
    ("user_id", "address_hash"),
    ("user_id", "address_hash", "medium", "validated_ts", "added_ts", "stream_position"),
)

# Reports of events, rooms and users, from the moderation chain (projections/reports.py);
# `id` is the report fact's stream position, `user_id` the reporter.
EVENT_REPORTS = Table(
    "event_reports",
    ("id",),
    ("id", "received_ts", "room_id", "event_id", "user_id", "reason", "score"),
)
ROOM_REPORTS = Table("room_reports", ("id",), ("id", "received_ts", "room_id", "user_id", "reason"))
USER_REPORTS = Table(
    "user_reports", ("id",), ("id", "received_ts", "target_user_id", "user_id", "reason")
)
# Mutes in force, from the rooms' com.linkchat.mute state (projections/mutes.py).
ROOM_MUTES = Table(
    "room_mutes",
    ("room_id", "user_id"),
    (
        "room_id",
        "user_id",
        "event_id",
        "muted_by",
        "level",
        "previous_level",
        "muted_ts",
        "expires_ts",
        "reason",
        "stream_position",
    ),
)
# Admin actions and flagged server admins, from the moderation chain (projections/admin.py).
ADMIN_ACTIONS = Table(
    "admin_actions",
    ("event_id",),
    (
        "event_id",
        "stream_position",
        "ts",
        "admin_id",
        "action",
        "target",
        "reason",
        "details",
    ),
)
SERVER_ADMINS = Table("server_admins", ("user_id",), ("user_id", "stream_position"))
RATELIMIT_OVERRIDES = Table(
    "ratelimit_overrides",
    ("user_id",),
    ("user_id", "messages_per_second", "burst_count", "stream_position"),
)
QUARANTINED_MEDIA = Table(
    "quarantined_media", ("media_id",), ("media_id", "quarantined_by", "stream_position")
)
REGISTRATION_TOKENS = Table(
    "registration_tokens",
    ("token",),
    ("token", "uses_allowed", "expiry_time", "stream_position"),
)
REGISTRATION_TOKEN_USES = Table(
    "registration_token_uses",
    ("event_id",),
    ("event_id", "token", "user_id", "session_id", "stream_position"),
)

# Shadow-ban periods, from the moderation chain (projections/shadow_bans.py): the user's
# events after banned_at and before unbanned_at (NULL: still banned) are hidden from others.
SHADOW_BAN_PERIODS = Table(
    "shadow_ban_periods", ("user_id", "banned_at"), ("user_id", "banned_at", "unbanned_at")
)

# Blocked rooms, from the moderation chain (projections/room_blocks.py).
BLOCKED_ROOMS = Table("blocked_rooms", ("room_id",), ("room_id", "blocked_by", "stream_position"))
PURGED_ROOMS = Table("purged_rooms", ("room_id",), ("room_id", "purged_by", "stream_position"))

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
    FRIEND_RELATIONS,
    USER_BLOCKS,
    MEDIA,
    EVENT_SEARCH,
    ROOM_DIRECTORY,
    LINKCHAT_DEVICES,
    DEVICE_COMMANDS,
    DEVICE_COMMAND_STATUS,
    DEVICE_COMMAND_RESULTS,
    PROFILES,
    USER_DIRECTORY_PUBLIC_ROOMS,
    E2E_DEVICE_KEYS,
    E2E_CROSS_SIGNING_KEYS,
    E2E_SIGNATURES,
    DEVICE_LIST_CHANGES,
    EVENT_REPORTS,
    ROOM_REPORTS,
    USER_REPORTS,
    ROOM_MUTES,
    SHADOW_BAN_PERIODS,
    BLOCKED_ROOMS,
    PURGED_ROOMS,
    ADMIN_ACTIONS,
    SERVER_ADMINS,
    RATELIMIT_OVERRIDES,
    QUARANTINED_MEDIA,
    REGISTRATION_TOKENS,
    REGISTRATION_TOKEN_USES,
    USER_THREEPIDS,
)
