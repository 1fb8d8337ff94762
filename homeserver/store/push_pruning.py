"""Pruning push_notifications: old rows go, what they still count stays (the backlog).

See migrations/0018_push_pruning.sql. Each call is one bounded statement.
"""

from __future__ import annotations

import asyncpg

from homeserver.store.push import READ_RECEIPTS, read_up_to_sql
from homeserver.store.results import rows_affected


async def fold_notifications_before(conn: asyncpg.Connection, before_ts: int, limit: int) -> int:
    """Delete up to `limit` of the oldest notifications recorded before `before_ts`,
    folding those still unread in a room the user is joined to into the backlog;
    how many were deleted."""
    deleted = await conn.fetchval(
        "WITH doomed AS (DELETE FROM push_notifications n USING (SELECT user_id, room_id,"
        "   stream_position FROM push_notifications WHERE ts < $1 ORDER BY ts LIMIT $2) o"
        "   WHERE n.user_id = o.user_id AND n.room_id = o.room_id"
        "   AND n.stream_position = o.stream_position"
        "   RETURNING n.user_id, n.room_id, n.thread_id, n.stream_position, n.highlight),"
        " groups AS (SELECT DISTINCT user_id, room_id, thread_id FROM doomed),"
        " floors AS (SELECT g.user_id, g.room_id, g.thread_id, "
        + read_up_to_sql("g.user_id", "g.room_id", "g.thread_id", "$3")
        + " AS floor FROM groups g WHERE EXISTS (SELECT 1 FROM room_members m"
        "   WHERE m.room_id = g.room_id AND m.user_id = g.user_id AND m.membership = 'join')),"
        " unread AS (SELECT f.user_id, f.room_id, f.thread_id, f.floor,"
        "   max(d.stream_position) AS pos, count(*) AS notifications,"
        "   count(*) FILTER (WHERE d.highlight) AS highlights"
        "   FROM floors f JOIN doomed d ON d.user_id = f.user_id AND d.room_id = f.room_id"
        "   AND d.thread_id = f.thread_id AND d.stream_position > f.floor"
        "   GROUP BY f.user_id, f.room_id, f.thread_id, f.floor),"
        # A backlog row already read is replaced, not added to.
        " folded AS (INSERT INTO push_notification_backlog AS b (user_id, room_id, thread_id,"
        "   stream_position, notifications, highlights)"
        "   SELECT u.user_id, u.room_id, u.thread_id,"
        "     greatest(u.pos, coalesce(k.stream_position, 0)),"
        "     u.notifications + CASE WHEN k.stream_position > u.floor"
        "       THEN k.notifications ELSE 0 END,"
        "     u.highlights + CASE WHEN k.stream_position > u.floor THEN k.highlights ELSE 0 END"
        "   FROM unread u LEFT JOIN push_notification_backlog k ON k.user_id = u.user_id"
        "     AND k.room_id = u.room_id AND k.thread_id = u.thread_id"
        "   ON CONFLICT (user_id, room_id, thread_id) DO UPDATE"
        "   SET stream_position = EXCLUDED.stream_position,"
        "   notifications = EXCLUDED.notifications, highlights = EXCLUDED.highlights)"
        " SELECT count(*) FROM doomed",
        before_ts,
        limit,
        list(READ_RECEIPTS),
    )
    return int(deleted)


async def delete_read_backlog(conn: asyncpg.Connection, limit: int) -> int:
    """Delete up to `limit` backlog rows that count nothing any more: read since, or of
    a room the user left; how many."""
    status = await conn.execute(
        "DELETE FROM push_notification_backlog b USING (SELECT k.user_id, k.room_id,"
        "   k.thread_id FROM push_notification_backlog k"
        "   WHERE NOT EXISTS (SELECT 1 FROM room_members m WHERE m.room_id = k.room_id"
        "     AND m.user_id = k.user_id AND m.membership = 'join')"
        "   OR k.stream_position <= "
        + read_up_to_sql("k.user_id", "k.room_id", "k.thread_id", "$2")
        + " LIMIT $1) o"
        " WHERE b.user_id = o.user_id AND b.room_id = o.room_id AND b.thread_id = o.thread_id",
        limit,
        list(READ_RECEIPTS),
    )
    return rows_affected(status)
