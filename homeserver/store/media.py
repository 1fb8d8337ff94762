"""Media records (projection of com.linkchat.media events); upload reservations (not in the log)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class MediaRow:
    media_id: str
    user_id: str
    content_type: str
    filename: str | None
    size: int
    sha256: str
    created_ts: int


@dataclass(frozen=True, slots=True)
class Reservation:
    media_id: str
    user_id: str
    expires_ts: int
    claimed: bool


async def media(
    conn: asyncpg.Connection, media_id: str, *, quarantined: bool = False
) -> MediaRow | None:
    """The file's record; a file an admin quarantined is served to no one, so it is
    found only when `quarantined` asks for it too (the admin API)."""
    row = await conn.fetchrow(
        "SELECT media_id, user_id, content_type, filename, size, sha256, created_ts"
        " FROM media m WHERE media_id = $1"
        " AND ($2 OR NOT EXISTS (SELECT 1 FROM quarantined_media q WHERE q.media_id = $1))",
        media_id,
        quarantined,
    )
    return MediaRow(**dict(row)) if row is not None else None


async def reservation(conn: asyncpg.Connection, media_id: str) -> Reservation | None:
    row = await conn.fetchrow(
        "SELECT media_id, user_id, expires_ts, claimed_ts IS NOT NULL AS claimed"
        " FROM media_reservations WHERE media_id = $1",
        media_id,
    )
    return Reservation(**dict(row)) if row is not None else None


async def pending_reservations(conn: asyncpg.Connection, user_id: str, now_ms: int) -> int:
    count = await conn.fetchval(
        "SELECT count(*) FROM media_reservations WHERE user_id = $1 AND expires_ts > $2",
        user_id,
        now_ms,
    )
    return int(count)


async def delete_expired_reservations(conn: asyncpg.Connection, now_ms: int) -> None:
    """Expired reservations nobody is uploading to (an upload in progress finishes first)."""
    await conn.execute(
        "DELETE FROM media_reservations WHERE expires_ts <= $1 AND claimed_ts IS NULL", now_ms
    )


async def reserve(
    conn: asyncpg.Connection, media_id: str, user_id: str, now_ms: int, expires_ts: int
) -> None:
    await conn.execute(
        "INSERT INTO media_reservations (media_id, user_id, created_ts, expires_ts)"
        " VALUES ($1, $2, $3, $4)",
        media_id,
        user_id,
        now_ms,
        expires_ts,
    )


async def claim(conn: asyncpg.Connection, media_id: str, user_id: str, now_ms: int) -> bool:
    """Take the reservation for one upload; False if it is gone, expired or taken meanwhile."""
    claimed = await conn.fetchval(
        "UPDATE media_reservations SET claimed_ts = $3"
        " WHERE media_id = $1 AND user_id = $2 AND claimed_ts IS NULL AND expires_ts > $3"
        " RETURNING media_id",
        media_id,
        user_id,
        now_ms,
    )
    return claimed is not None


async def release(conn: asyncpg.Connection, media_id: str) -> None:
    """An upload to the reservation failed: it may be tried again."""
    await conn.execute(
        "UPDATE media_reservations SET claimed_ts = NULL WHERE media_id = $1", media_id
    )


async def delete_reservation(conn: asyncpg.Connection, media_id: str) -> None:
    await conn.execute("DELETE FROM media_reservations WHERE media_id = $1", media_id)
