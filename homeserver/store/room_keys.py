"""Server-side key backup (/room_keys): versions and the encrypted session keys in them.
Not in the log (migrations: room_key_backup_versions, room_key_backup_keys)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from homeserver.store.results import rows_affected
from homeserver.store.unnest import columns

# The first half of the advisory lock every backup write takes per user.
BACKUP_LOCK = 7_240_003


@dataclass(frozen=True, slots=True)
class BackupVersion:
    version: int
    algorithm: str
    auth_data: str
    etag: int


@dataclass(frozen=True, slots=True)
class BackedUpKey:
    room_id: str
    session_id: str
    first_message_index: int
    forwarded_count: int
    is_verified: bool
    session_data: str


async def lock_backup(conn: asyncpg.Connection, user_id: str) -> None:
    """Serialise the user's backup writes until commit: a version is created, replaced or
    deleted, and keys are compared and replaced, against what the last writer left."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", BACKUP_LOCK, user_id)


_VERSION_COLUMNS = "version, algorithm, auth_data, etag"
_KEY_COLUMNS = (
    "room_id, session_id, first_message_index, forwarded_count, is_verified, session_data"
)


def _version(row: asyncpg.Record) -> BackupVersion:
    return BackupVersion(**dict(row))  # the columns are the fields (_VERSION_COLUMNS)


async def current_version(conn: asyncpg.Connection, user_id: str) -> BackupVersion | None:
    row = await conn.fetchrow(
        f"SELECT {_VERSION_COLUMNS} FROM room_key_backup_versions"
        " WHERE user_id = $1 AND NOT deleted ORDER BY version DESC LIMIT 1",
        user_id,
    )
    return _version(row) if row is not None else None


async def version(conn: asyncpg.Connection, user_id: str, number: int) -> BackupVersion | None:
    row = await conn.fetchrow(
        f"SELECT {_VERSION_COLUMNS} FROM room_key_backup_versions"
        " WHERE user_id = $1 AND version = $2 AND NOT deleted",
        user_id,
        number,
    )
    return _version(row) if row is not None else None


async def create_version(
    conn: asyncpg.Connection, user_id: str, algorithm: str, auth_data: str
) -> int:
    """A new version, numbered after every version the user ever had (deleted ones too)."""
    return int(
        await conn.fetchval(
            "INSERT INTO room_key_backup_versions (user_id, version, algorithm, auth_data)"
            " SELECT $1, coalesce(max(version), 0) + 1, $2, $3"
            " FROM room_key_backup_versions WHERE user_id = $1 RETURNING version",
            user_id,
            algorithm,
            auth_data,
        )
    )


async def update_auth_data(
    conn: asyncpg.Connection, user_id: str, number: int, auth_data: str
) -> None:
    await conn.execute(
        "UPDATE room_key_backup_versions SET auth_data = $3 WHERE user_id = $1 AND version = $2",
        user_id,
        number,
        auth_data,
    )


async def delete_version(conn: asyncpg.Connection, user_id: str, number: int) -> None:
    await conn.execute(
        "DELETE FROM room_key_backup_keys WHERE user_id = $1 AND version = $2", user_id, number
    )
    await conn.execute(
        "UPDATE room_key_backup_versions SET deleted = TRUE WHERE user_id = $1 AND version = $2",
        user_id,
        number,
    )


async def bump_etag(conn: asyncpg.Connection, user_id: str, number: int) -> int:
    return int(
        await conn.fetchval(
            "UPDATE room_key_backup_versions SET etag = etag + 1"
            " WHERE user_id = $1 AND version = $2 RETURNING etag",
            user_id,
            number,
        )
    )


async def count(conn: asyncpg.Connection, user_id: str, number: int) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM room_key_backup_keys WHERE user_id = $1 AND version = $2",
            user_id,
            number,
        )
    )


def _key(row: asyncpg.Record) -> BackedUpKey:
    return BackedUpKey(**dict(row))  # the columns are the fields (_KEY_COLUMNS)


async def keys(
    conn: asyncpg.Connection,
    user_id: str,
    number: int,
    room_id: str | None = None,
    session_id: str | None = None,
) -> list[BackedUpKey]:
    """The version's keys, of one room or one session when given."""
    rows = await conn.fetch(
        f"SELECT {_KEY_COLUMNS} FROM room_key_backup_keys WHERE user_id = $1 AND version = $2"
        " AND ($3::text IS NULL OR room_id = $3) AND ($4::text IS NULL OR session_id = $4)"
        " ORDER BY room_id, session_id",
        user_id,
        number,
        room_id,
        session_id,
    )
    return [_key(row) for row in rows]


async def keys_of_sessions(
    conn: asyncpg.Connection, user_id: str, number: int, sessions: Sequence[tuple[str, str]]
) -> list[BackedUpKey]:
    rows = await conn.fetch(
        f"SELECT {_KEY_COLUMNS} FROM room_key_backup_keys k"
        " JOIN unnest($3::text[], $4::text[]) AS w(room_id, session_id)"
        "   USING (room_id, session_id)"
        " WHERE k.user_id = $1 AND k.version = $2",
        user_id,
        number,
        *columns(sessions, 2),
    )
    return [_key(row) for row in rows]


async def put_keys(
    conn: asyncpg.Connection, user_id: str, number: int, new_keys: Sequence[BackedUpKey]
) -> None:
    if not new_keys:
        return
    await conn.execute(
        "INSERT INTO room_key_backup_keys (user_id, version, room_id, session_id,"
        " first_message_index, forwarded_count, is_verified, session_data)"
        " SELECT $1, $2, w.* FROM unnest($3::text[], $4::text[], $5::bigint[], $6::bigint[],"
        "   $7::boolean[], $8::text[]) AS w"
        " ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET"
        " first_message_index = EXCLUDED.first_message_index,"
        " forwarded_count = EXCLUDED.forwarded_count, is_verified = EXCLUDED.is_verified,"
        " session_data = EXCLUDED.session_data",
        user_id,
        number,
        [k.room_id for k in new_keys],
        [k.session_id for k in new_keys],
        [k.first_message_index for k in new_keys],
        [k.forwarded_count for k in new_keys],
        [k.is_verified for k in new_keys],
        [k.session_data for k in new_keys],
    )


async def delete_keys(
    conn: asyncpg.Connection,
    user_id: str,
    number: int,
    room_id: str | None = None,
    session_id: str | None = None,
) -> int:
    """Delete the version's keys (of one room or session when given); how many went."""
    result = await conn.execute(
        "DELETE FROM room_key_backup_keys WHERE user_id = $1 AND version = $2"
        " AND ($3::text IS NULL OR room_id = $3) AND ($4::text IS NULL OR session_id = $4)",
        user_id,
        number,
        room_id,
        session_id,
    )
    return rows_affected(result)
