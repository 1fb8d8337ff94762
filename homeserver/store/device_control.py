"""Devices, their commands (projections) and single-use login tokens (secrets)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.events.canonical import decode

OPEN_STATUSES = ("pending", "accepted", "running")


@dataclass(frozen=True, slots=True)
class DeviceRow:
    device_user_id: str
    owner_id: str
    room_id: str
    display_name: str
    created_ts: int


@dataclass(frozen=True, slots=True)
class CommandStateRow:
    command_id: str
    room_id: str
    expires_ts: int
    status: str


@dataclass(frozen=True, slots=True)
class ResultRow:
    event_id: str
    sender: str
    status: str
    output: Any
    has_output: bool
    error: str | None
    ts: int


@dataclass(frozen=True, slots=True)
class CommandRow:
    command_id: str
    sender: str
    action: str
    args: Any
    ttl_ms: int
    sent_ts: int
    expires_ts: int
    status: str
    updated_ts: int
    stream_position: int


# Devices


_DEVICE_COLUMNS = "device_user_id, owner_id, room_id, display_name, created_ts"


def _device(row: asyncpg.Record) -> DeviceRow:
    return DeviceRow(**dict(row))  # the columns are the fields (_DEVICE_COLUMNS)


async def devices_of(conn: asyncpg.Connection, owner_id: str) -> list[DeviceRow]:
    rows = await conn.fetch(
        f"SELECT {_DEVICE_COLUMNS} FROM linkchat_devices"
        " WHERE owner_id = $1 ORDER BY created_ts, device_user_id",
        owner_id,
    )
    return [_device(row) for row in rows]


async def device(conn: asyncpg.Connection, device_user_id: str) -> DeviceRow | None:
    row = await conn.fetchrow(
        f"SELECT {_DEVICE_COLUMNS} FROM linkchat_devices WHERE device_user_id = $1",
        device_user_id,
    )
    return _device(row) if row is not None else None


async def user_kind(conn: asyncpg.Connection, user_id: str) -> str | None:
    """'user' or 'device' for a known account, None for an unknown one."""
    value = await conn.fetchval("SELECT kind FROM users WHERE user_id = $1", user_id)
    return str(value) if value is not None else None


# Commands


async def command_states(
    conn: asyncpg.Connection, command_ids: Sequence[str]
) -> list[CommandStateRow]:
    rows = await conn.fetch(
        "SELECT c.command_id, c.room_id, c.expires_ts, s.status FROM device_commands c"
        " JOIN device_command_status s USING (room_id, command_id)"
        " WHERE c.command_id = ANY($1::text[])",
        list(command_ids),
    )
    return [
        CommandStateRow(row["command_id"], row["room_id"], row["expires_ts"], row["status"])
        for row in rows
    ]


async def open_commands(
    conn: asyncpg.Connection, *, due_by: int | None = None, command_ids: Sequence[str] | None = None
) -> list[CommandStateRow]:
    """Device rooms' commands nobody finished yet: all, those due by `due_by` (ms), or
    among `command_ids`."""
    rows = await conn.fetch(
        "SELECT c.command_id, c.room_id, c.expires_ts, s.status FROM device_command_status s"
        " JOIN device_commands c USING (room_id, command_id)"
        " JOIN rooms r ON r.room_id = s.room_id AND r.room_type = 'com.linkchat.device'"
        " WHERE s.status IN ('pending', 'accepted', 'running')"
        " AND ($1::bigint IS NULL OR c.expires_ts <= $1)"
        " AND ($2::text[] IS NULL OR s.command_id = ANY($2::text[]))"
        " ORDER BY c.expires_ts",
        due_by,
        list(command_ids) if command_ids is not None else None,
    )
    return [
        CommandStateRow(row["command_id"], row["room_id"], row["expires_ts"], row["status"])
        for row in rows
    ]


async def commands(
    conn: asyncpg.Connection,
    room_id: str,
    statuses: Sequence[str] | None,
    after_position: int,
    limit: int,
) -> list[CommandRow]:
    """A device room's commands in log order, after `after_position`, with their latest status."""
    rows = await conn.fetch(
        "SELECT c.command_id, c.sender, c.action, c.args, c.ttl_ms, c.sent_ts, c.expires_ts,"
        " s.status, s.updated_ts, c.stream_position FROM device_commands c"
        " JOIN device_command_status s USING (room_id, command_id)"
        " WHERE c.room_id = $1 AND c.stream_position > $2"
        " AND ($3::text[] IS NULL OR s.status = ANY($3::text[]))"
        " ORDER BY c.stream_position LIMIT $4",
        room_id,
        after_position,
        list(statuses) if statuses is not None else None,
        limit,
    )
    return [
        CommandRow(
            row["command_id"],
            row["sender"],
            row["action"],
            decode(row["args"]),
            row["ttl_ms"],
            row["sent_ts"],
            row["expires_ts"],
            row["status"],
            row["updated_ts"],
            row["stream_position"],
        )
        for row in rows
    ]


async def results_of(
    conn: asyncpg.Connection, room_id: str, command_ids: Sequence[str]
) -> dict[str, list[ResultRow]]:
    """The results and expiries, sent in the commands' own room, of each command."""
    rows = await conn.fetch(
        "SELECT command_id, event_id, sender, status, output, error, ts FROM device_command_results"
        " WHERE command_id = ANY($1::text[]) AND room_id = $2 ORDER BY stream_position",
        list(command_ids),
        room_id,
    )
    found: dict[str, list[ResultRow]] = {}
    for row in rows:
        output = row["output"]
        found.setdefault(row["command_id"], []).append(
            ResultRow(
                row["event_id"],
                row["sender"],
                row["status"],
                decode(output) if output is not None else None,
                output is not None,
                row["error"],
                row["ts"],
            )
        )
    return found


# Login tokens (not in the log)


async def insert_login_token(
    conn: asyncpg.Connection, token_hash: str, user_id: str, expires_ts: int, now_ms: int
) -> None:
    # Expired tokens are useless: each new one clears those of everybody.
    await conn.execute("DELETE FROM login_tokens WHERE expires_ts <= $1", now_ms)
    await conn.execute(
        "INSERT INTO login_tokens (token_hash, user_id, expires_ts) VALUES ($1, $2, $3)",
        token_hash,
        user_id,
        expires_ts,
    )


async def take_login_token(conn: asyncpg.Connection, token_hash: str) -> tuple[str, int] | None:
    """(user ID, expiry in ms) of a login token, which is used up by being taken."""
    row = await conn.fetchrow(
        "DELETE FROM login_tokens WHERE token_hash = $1 RETURNING user_id, expires_ts", token_hash
    )
    return (row["user_id"], row["expires_ts"]) if row is not None else None


async def delete_login_tokens(conn: asyncpg.Connection, user_id: str) -> None:
    await conn.execute("DELETE FROM login_tokens WHERE user_id = $1", user_id)
