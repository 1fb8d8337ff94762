"""Reports of events, rooms and users (`event_reports`, `room_reports`, `user_reports`,
projections of the moderation chain), as the admin API pages and filters them: by
offset, newest or oldest first, the reporter and the room matched anywhere in their
IDs (as Synapse does), the reported event's sender and the reported user exactly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from homeserver.events.content.reports import ReportKind
from homeserver.store.query_args import QueryArgs
from homeserver.store.room_directory import like_anywhere

# What a listed report shows besides its own row: the reported event's sender.
_SELECT: dict[ReportKind, str] = {
    "event": "SELECT r.*, e.sender FROM event_reports r"
    " LEFT JOIN events e ON e.event_id = r.event_id",
    "room": "SELECT r.* FROM room_reports r",
    "user": "SELECT r.* FROM user_reports r",
}


@dataclass(frozen=True, slots=True)
class ReportFilter:
    reporter: str | None = None  # anywhere in the reporter's ID
    room_id: str | None = None  # anywhere in the room's ID (event and room reports)
    sender: str | None = None  # the reported event's sender, exactly
    target: str | None = None  # the reported user, exactly


@dataclass(frozen=True, slots=True)
class ReportPage:
    reports: list[dict[str, Any]]
    total: int


def _conditions(kind: ReportKind, found: ReportFilter, args: QueryArgs) -> str:
    where = ["TRUE"]
    if found.reporter:
        where.append(f"r.user_id LIKE {args.param(like_anywhere(found.reporter))}")
    if found.room_id and kind != "user":
        where.append(f"r.room_id LIKE {args.param(like_anywhere(found.room_id))}")
    if found.sender is not None and kind == "event":
        where.append(f"e.sender = {args.param(found.sender)}")
    if found.target is not None and kind == "user":
        where.append(f"r.target_user_id = {args.param(found.target)}")
    return " AND ".join(where)


async def reports(
    conn: asyncpg.Connection,
    kind: ReportKind,
    found: ReportFilter,
    *,
    offset: int,
    limit: int,
    newest_first: bool,
) -> ReportPage:
    """A page of the reports of `kind` that `found` matches, and how many match in all.
    A report's ID is its fact's stream position, so ordering by it is by time."""
    args = QueryArgs(offset, limit)
    where = _conditions(kind, found, args)
    order = "DESC" if newest_first else "ASC"
    row = await conn.fetchrow(
        f"""
        WITH matched AS MATERIALIZED ({_SELECT[kind]} WHERE {where})
        SELECT (SELECT count(*) FROM matched) AS total,
               (SELECT coalesce(json_agg(page ORDER BY id {order}), '[]') FROM (
                    SELECT * FROM matched ORDER BY id {order} OFFSET $1 LIMIT $2
               ) page)::text AS page
        """,
        *args.values,
    )
    assert row is not None
    return ReportPage(orjson.loads(row["page"]), int(row["total"]))


async def report(
    conn: asyncpg.Connection, kind: ReportKind, report_id: int
) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"{_SELECT[kind]} WHERE r.id = $1", report_id)
    return dict(row) if row is not None else None
