"""User accounts as the admin API lists them: account, profile, admin flag, last token."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from homeserver.store.query_args import QueryArgs


@dataclass(frozen=True, slots=True)
class UserRow:
    user_id: str
    kind: str
    created_ts: int
    deactivated: bool
    erased: bool
    displayname: str | None
    avatar_url: str | None
    admin: bool
    last_seen_ts: int | None
    shadow_banned: bool


@dataclass(frozen=True, slots=True)
class UserQuery:
    """Which users a page lists (Synapse's GET /_synapse/admin/v2/users parameters)."""

    name: str | None = None  # in the localpart or display name
    user_id: str | None = None  # in the user ID (ignored with `name`)
    guests: bool = True
    deactivated: bool = False  # include deactivated users
    admins: bool | None = None  # only admins, only the others, or both
    order_by: str = "name"
    forwards: bool = True


# Sort keys of GET /_synapse/admin/v2/users, as columns of _USERS.
ORDER_COLUMNS = {
    "name": "user_id",
    "is_guest": "kind = 'guest'",
    "admin": "admin",
    "user_type": "nullif(kind, 'user')",
    "deactivated": "deactivated",
    "shadow_banned": "shadow_banned",
    "displayname": "displayname",
    "avatar_url": "avatar_url",
    "creation_ts": "created_ts",
    "last_seen_ts": "last_seen_ts",
}

# $1: the configured admins, who are admins without a flag.
_USERS = """
SELECT u.user_id, u.kind, u.created_ts, u.deactivated, u.erased, p.displayname, p.avatar_url,
       (a.user_id IS NOT NULL OR u.user_id = ANY($1::text[])) AS admin,
       (SELECT max(t.created_ts) FROM access_tokens t WHERE t.user_id = u.user_id)
           AS last_seen_ts,
       EXISTS (SELECT 1 FROM shadow_ban_periods sb
                WHERE sb.user_id = u.user_id AND sb.unbanned_at IS NULL) AS shadow_banned
  FROM users u
  LEFT JOIN profiles p ON p.user_id = u.user_id
  LEFT JOIN server_admins a ON a.user_id = u.user_id
"""


def _row(record: asyncpg.Record) -> UserRow:
    return UserRow(**dict(record))


async def user(conn: asyncpg.Connection, user_id: str, configured: list[str]) -> UserRow | None:
    record = await conn.fetchrow(_USERS + " WHERE u.user_id = $2", configured, user_id)
    return _row(record) if record is not None else None


def _where(query: UserQuery, args: QueryArgs) -> str:
    clauses: list[str] = []
    if query.name is not None:
        term = args.param(query.name.lower())
        clauses.append(
            f"(strpos(lower(split_part(substr(user_id, 2), ':', 1)), {term}) > 0"
            f" OR strpos(lower(coalesce(displayname, '')), {term}) > 0)"
        )
    elif query.user_id is not None:
        clauses.append(f"strpos(lower(user_id), {args.param(query.user_id.lower())}) > 0")
    if not query.guests:
        clauses.append("kind <> 'guest'")
    if not query.deactivated:
        clauses.append("NOT deactivated")
    if query.admins is not None:
        clauses.append("admin" if query.admins else "NOT admin")
    return f"WHERE {' AND '.join(clauses)}" if clauses else ""


async def users(
    conn: asyncpg.Connection, query: UserQuery, configured: list[str], offset: int, limit: int
) -> tuple[list[UserRow], int]:
    """A page of the users `query` selects, and how many it selects in all."""
    args = QueryArgs(configured)
    where = _where(query, args)
    listed = f"SELECT * FROM ({_USERS}) listed {where}"
    total = int(await conn.fetchval(f"SELECT count(*) FROM ({listed}) counted", *args.values))
    direction = "ASC" if query.forwards else "DESC"
    # Ties (and NULLs, last forwards) sort by ascending user ID, as Synapse: a stable order.
    order = f"{ORDER_COLUMNS[query.order_by]} {direction}, user_id ASC"
    page = f"OFFSET {args.param(offset)} LIMIT {args.param(limit)}"
    rows = await conn.fetch(f"{listed} ORDER BY {order} {page}", *args.values)
    return [_row(row) for row in rows], total


async def rooms_in(conn: asyncpg.Connection, user_id: str) -> list[tuple[str, str]]:
    """(room ID, membership) of each room the user is joined to, invited to or knocking at."""
    rows = await conn.fetch(
        "SELECT room_id, membership FROM room_members WHERE user_id = $1"
        " AND membership IN ('join', 'invite', 'knock') ORDER BY stream_position",
        user_id,
    )
    return [(row["room_id"], row["membership"]) for row in rows]


async def memberships(conn: asyncpg.Connection, user_id: str) -> dict[str, str]:
    """Every room the user has a membership in (joined, left, banned ...): room -> membership."""
    rows = await conn.fetch(
        "SELECT room_id, membership FROM room_members WHERE user_id = $1 ORDER BY stream_position",
        user_id,
    )
    return {row["room_id"]: row["membership"] for row in rows}


@dataclass(frozen=True, slots=True)
class UploadRow:
    media_id: str
    content_type: str
    filename: str | None
    size: int
    created_ts: int
    quarantined_by: str | None


# Sort keys of GET /_synapse/admin/v1/users/{userId}/media, as columns of the query.
MEDIA_ORDER_COLUMNS = {
    "media_id": "m.media_id",
    "upload_name": "m.filename",
    "created_ts": "m.created_ts",
    # Access times are not kept: every file sorts as never accessed.
    "last_access_ts": "NULL::bigint",
    "media_length": "m.size",
    "media_type": "m.content_type",
    "quarantined_by": "q.quarantined_by",
    "safe_from_quarantine": "FALSE",
}


async def uploads(
    conn: asyncpg.Connection, user_id: str, order_by: str, forwards: bool, offset: int, limit: int
) -> tuple[list[UploadRow], int]:
    """A page of the files the user uploaded (quarantined ones too), and how many in all."""
    total = int(await conn.fetchval("SELECT count(*) FROM media WHERE user_id = $1", user_id))
    direction = "ASC" if forwards else "DESC"
    rows = await conn.fetch(
        "SELECT m.media_id, m.content_type, m.filename, m.size, m.created_ts, q.quarantined_by"
        " FROM media m LEFT JOIN quarantined_media q ON q.media_id = m.media_id"
        f" WHERE m.user_id = $1 ORDER BY {MEDIA_ORDER_COLUMNS[order_by]} {direction},"
        " m.media_id ASC OFFSET $2 LIMIT $3",
        user_id,
        offset,
        limit,
    )
    return [UploadRow(**dict(row)) for row in rows], total
