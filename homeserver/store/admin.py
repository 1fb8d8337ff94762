"""Server administration: the audit trail of admin actions and the flagged admins (projections)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from homeserver.store.query_args import QueryArgs


@dataclass(frozen=True, slots=True)
class ActionRow:
    event_id: str
    stream_position: int
    ts: int
    admin_id: str
    action: str
    target: str | None
    reason: str | None
    details: str | None  # JSON


@dataclass(frozen=True, slots=True)
class ActionFilter:
    """Which actions to list: each given field must match (`action` also as a prefix:
    `user` matches `user.deactivate`)."""

    admin_id: str | None = None
    action: str | None = None
    target: str | None = None
    since_ts: int | None = None
    until_ts: int | None = None


async def is_flagged_admin(conn: asyncpg.Connection, user_id: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM server_admins WHERE user_id = $1", user_id))


async def all_flagged_admins(conn: asyncpg.Connection) -> set[str]:
    return {row["user_id"] for row in await conn.fetch("SELECT user_id FROM server_admins")}


async def flagged_admins(conn: asyncpg.Connection, user_ids: list[str]) -> set[str]:
    """Which of `user_ids` are flagged server admins."""
    rows = await conn.fetch(
        "SELECT user_id FROM server_admins WHERE user_id = ANY($1::text[])", user_ids
    )
    return {row["user_id"] for row in rows}


def _where(found: ActionFilter, args: QueryArgs) -> list[str]:
    clauses: list[str] = []
    if found.admin_id is not None:
        clauses.append(f"admin_id = {args.param(found.admin_id)}")
    if found.action is not None:
        exact = args.param(found.action)
        clauses.append(f"(action = {exact} OR starts_with(action, {exact} || '.'))")
    if found.target is not None:
        clauses.append(f"target = {args.param(found.target)}")
    if found.since_ts is not None:
        clauses.append(f"ts >= {args.param(found.since_ts)}")
    if found.until_ts is not None:
        clauses.append(f"ts <= {args.param(found.until_ts)}")
    return clauses


async def admin_actions(
    conn: asyncpg.Connection,
    found: ActionFilter,
    *,
    after: int | None,
    before: int | None,
    limit: int,
    forwards: bool,
) -> list[ActionRow]:
    """Up to `limit` actions matching `found` strictly between the stream positions
    `after` and `before`, oldest first when `forwards`, else newest first."""
    args = QueryArgs()
    clauses = _where(found, args)
    if after is not None:
        clauses.append(f"stream_position > {args.param(after)}")
    if before is not None:
        clauses.append(f"stream_position < {args.param(before)}")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    order = "ASC" if forwards else "DESC"
    limit_param = args.param(limit)
    rows = await conn.fetch(
        "SELECT event_id, stream_position, ts, admin_id, action, target, reason, details"
        f" FROM admin_actions {where} ORDER BY stream_position {order} LIMIT {limit_param}",
        *args.values,
    )
    return [ActionRow(**dict(row)) for row in rows]


async def count_admin_actions(conn: asyncpg.Connection, found: ActionFilter) -> int:
    args = QueryArgs()
    clauses = _where(found, args)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return int(await conn.fetchval(f"SELECT count(*) FROM admin_actions {where}", *args.values))


async def ratelimit_overrides(conn: asyncpg.Connection) -> dict[str, tuple[int, int]]:
    """Every user's own rate: user ID -> (messages_per_second, burst_count)."""
    rows = await conn.fetch(
        "SELECT user_id, messages_per_second, burst_count FROM ratelimit_overrides"
    )
    return {row["user_id"]: (row["messages_per_second"], row["burst_count"]) for row in rows}
