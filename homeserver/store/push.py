"""Push: what evaluation reads (rules, ignore lists, rooms), notifications, pushers, outbox."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.events import types
from homeserver.events.canonical import decode
from homeserver.events.model import Event
from homeserver.store.events import event_from_row
from homeserver.store.results import fetch_column, rows_affected

PUSH_RULES = "m.push_rules"
# The push follower's name in follower_positions (push/sender.py): sync reads its
# position to know which events it has not evaluated yet.
FOLLOWER_NAME = "push.notifications"
READ_RECEIPTS = ("m.read", "m.read.private")


# What evaluation reads


async def stored_rules(
    conn: asyncpg.Connection, user_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The m.push_rules content of those of `user_ids` who changed their rules."""
    rows = await conn.fetch(
        "SELECT user_id, content FROM account_data WHERE user_id = ANY($1::text[])"
        " AND room_id = '' AND type = $2",
        list(user_ids),
        PUSH_RULES,
    )
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        content = decode(row["content"])
        if isinstance(content, dict):
            found[row["user_id"]] = content
    return found


def account_data_key(data_type: str) -> str:
    # The state key of global account data in its owner's chain (account_data/facts.py).
    return json.dumps(["", data_type])


async def account_facts_as_of(
    conn: asyncpg.Connection, user_ids: Sequence[str], position: int
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Each user's m.push_rules and m.ignored_user_list contents as they were at
    `position`, from their account chains (the push follower evaluates each event with
    the rules of then)."""
    rows = await conn.fetch(
        "SELECT u.user_id, k.key, e.json FROM unnest($1::text[]) AS u(user_id)"
        " CROSS JOIN unnest($2::text[]) AS k(key)"
        " CROSS JOIN LATERAL (SELECT json FROM events WHERE room_id = u.user_id"
        "   AND type = $3 AND state_key = k.key AND stream_position <= $4"
        "   ORDER BY stream_position DESC LIMIT 1) e",
        list(user_ids),
        [account_data_key(PUSH_RULES), account_data_key(types.IGNORED_USER_LIST)],
        types.ACCOUNT_DATA,
        position,
    )
    rules: dict[str, dict[str, Any]] = {}
    ignores: dict[str, dict[str, Any]] = {}
    for row in rows:
        content = decode(row["json"]).get("content", {}).get("content")
        if not isinstance(content, dict):
            continue
        if row["key"] == account_data_key(PUSH_RULES):
            rules[row["user_id"]] = content
        else:
            ignores[row["user_id"]] = content
    return rules, ignores


async def account_facts_changed(
    conn: asyncpg.Connection, user_id: str, after: int, upto: int
) -> bool:
    """Whether the user changed their push rules or ignore list in (after, upto]."""
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM events WHERE room_id = $1 AND type = $2"
            " AND state_key = ANY($3::text[]) AND stream_position > $4"
            " AND stream_position <= $5)",
            user_id,
            types.ACCOUNT_DATA,
            [account_data_key(PUSH_RULES), account_data_key(types.IGNORED_USER_LIST)],
            after,
            upto,
        )
    )


@dataclass(frozen=True, slots=True)
class MemberRow:
    user_id: str
    membership: str
    display_name: str | None
    stream_position: int


@dataclass(frozen=True, slots=True)
class RoomSnapshot:
    """A room as of a position: its members' latest member events, its power levels."""

    members: list[MemberRow]
    power_levels: dict[str, Any] | None
    creator: str | None
    name: str | None
    create: dict[str, Any] | None  # the create event's content


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


async def room_snapshot(conn: asyncpg.Connection, room_id: str, position: int) -> RoomSnapshot:
    """The room as it was at `position` (its events at or before it)."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (state_key) state_key, stream_position,"
        " json::jsonb -> 'content' ->> 'membership' AS membership,"
        " json::jsonb -> 'content' -> 'displayname' AS displayname"
        " FROM events WHERE room_id = $1 AND type = 'm.room.member'"
        " AND state_key IS NOT NULL AND stream_position <= $2"
        " ORDER BY state_key, stream_position DESC",
        room_id,
        position,
    )
    members = [
        MemberRow(
            row["state_key"],
            row["membership"] or "leave",
            _text(decode(row["displayname"])) if row["displayname"] is not None else None,
            row["stream_position"],
        )
        for row in rows
    ]
    state = await conn.fetchrow(
        "SELECT (SELECT json FROM events WHERE room_id = $1 AND type = 'm.room.power_levels'"
        "   AND state_key = '' AND stream_position <= $2"
        "   ORDER BY stream_position DESC LIMIT 1) AS power,"
        " (SELECT json::jsonb -> 'content' -> 'name' FROM events WHERE room_id = $1"
        "   AND type = 'm.room.name' AND state_key = '' AND stream_position <= $2"
        "   ORDER BY stream_position DESC LIMIT 1) AS name,"
        " (SELECT creator FROM rooms WHERE room_id = $1) AS creator,"
        " (SELECT json FROM events WHERE room_id = $1 AND type = 'm.room.create'"
        "   AND state_key = '' ORDER BY stream_position LIMIT 1) AS create_json",
        room_id,
        position,
    )
    name = _text(decode(state["name"])) if state["name"] is not None else None
    return RoomSnapshot(
        members,
        _content_of(state["power"]),
        state["creator"],
        name or None,
        _content_of(state["create_json"]),
    )


def _content_of(logged: str | None) -> dict[str, Any] | None:
    content = decode(logged).get("content") if logged is not None else None
    return content if isinstance(content, dict) else None


@dataclass(frozen=True, slots=True)
class RoomFactsRow:
    joined: int
    power_levels: dict[str, Any] | None
    creator: str | None
    create: dict[str, Any] | None  # the create event's content


async def current_room_facts(
    conn: asyncpg.Connection, room_ids: Sequence[str]
) -> dict[str, RoomFactsRow]:
    """Each room's joined member count and current power levels."""
    rows = await conn.fetch(
        "SELECT r.room_id, r.creator,"
        " (SELECT count(*) FROM room_members m WHERE m.room_id = r.room_id"
        "   AND m.membership = 'join') AS joined,"
        " (SELECT e.json FROM current_state s JOIN events e ON e.event_id = s.event_id"
        "   WHERE s.room_id = r.room_id AND s.type = 'm.room.power_levels'"
        "   AND s.state_key = '') AS power,"
        " (SELECT e.json FROM current_state s JOIN events e ON e.event_id = s.event_id"
        "   WHERE s.room_id = r.room_id AND s.type = 'm.room.create'"
        "   AND s.state_key = '') AS create_json"
        " FROM rooms r WHERE r.room_id = ANY($1::text[])",
        list(room_ids),
    )
    return {
        row["room_id"]: RoomFactsRow(
            int(row["joined"]),
            _content_of(row["power"]),
            row["creator"],
            _content_of(row["create_json"]),
        )
        for row in rows
    }


async def display_names(conn: asyncpg.Connection, user_id: str) -> dict[str, str | None]:
    """The user's display name in each room they are joined to."""
    rows = await conn.fetch(
        "SELECT m.room_id, e.json::jsonb -> 'content' -> 'displayname' AS displayname"
        " FROM room_members m JOIN events e ON e.event_id = m.event_id"
        " WHERE m.user_id = $1 AND m.membership = 'join'",
        user_id,
    )
    return {
        row["room_id"]: _text(decode(row["displayname"])) if row["displayname"] else None
        for row in rows
    }


# Notifications


@dataclass(frozen=True, slots=True)
class NotificationRow:
    user_id: str
    room_id: str
    stream_position: int
    event_id: str
    thread_id: str
    highlight: bool
    actions: str  # JSON
    ts: int


async def insert_notifications(conn: asyncpg.Connection, rows: Sequence[NotificationRow]) -> None:
    if not rows:
        return
    await conn.execute(
        "INSERT INTO push_notifications (user_id, room_id, stream_position, event_id,"
        " thread_id, highlight, actions, ts)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[],"
        " $6::bool[], $7::text[], $8::bigint[]) ON CONFLICT DO NOTHING",
        [r.user_id for r in rows],
        [r.room_id for r in rows],
        [r.stream_position for r in rows],
        [r.event_id for r in rows],
        [r.thread_id for r in rows],
        [r.highlight for r in rows],
        [r.actions for r in rows],
        [r.ts for r in rows],
    )


# Per room and thread, where the user has read up to: "" for their unthreaded
# receipts (which read every thread), else the thread ("main" or a root).
ReadPositions = dict[str, dict[str, int]]
# Per room and thread ("main" or a root): (notifications, highlights).
ThreadCounts = dict[str, dict[str, tuple[int, int]]]

_READ = (
    "SELECT rc.room_id, rc.thread_id, max(x.stream_position) AS pos FROM receipts rc"
    " JOIN events x ON x.event_id = rc.event_id WHERE rc.user_id = $1"
    " AND rc.room_id = ANY($2::text[]) AND rc.receipt_type = ANY($3::text[])"
    " GROUP BY rc.room_id, rc.thread_id"
)


async def unread_notifications(
    conn: asyncpg.Connection, user_id: str, room_ids: Sequence[str], upto: int
) -> tuple[int, ThreadCounts, ReadPositions]:
    """In one snapshot: the push follower's position F, the user's unread notifications
    at or before min(F, upto) per room and thread, and their read positions (for
    counting what the follower has not reached yet)."""
    if not room_ids:
        return 0, {}, {}
    rows = await conn.fetch(
        f"WITH read AS ({_READ}),"
        " follower AS (SELECT coalesce((SELECT position FROM follower_positions"
        "   WHERE name = $5), 0) AS position)"
        " SELECT 'n' AS what, r.room_id, n.thread_id, count(*) AS notify,"
        "   count(*) FILTER (WHERE n.highlight) AS highlight, NULL::bigint AS pos"
        " FROM unnest($2::text[]) AS r(room_id)"
        " CROSS JOIN LATERAL (SELECT coalesce(max(read.pos), 0) AS floor FROM read"
        "   WHERE read.room_id = r.room_id AND read.thread_id = '') f"
        " JOIN push_notifications n ON n.user_id = $1 AND n.room_id = r.room_id"
        "   AND n.stream_position > f.floor"
        "   AND n.stream_position <= least($4, (SELECT position FROM follower))"
        " LEFT JOIN read t ON t.room_id = n.room_id AND t.thread_id = n.thread_id"
        " WHERE n.stream_position > coalesce(t.pos, 0)"
        " GROUP BY r.room_id, n.thread_id"
        # What pruning folded away and the user has not read (0018_push_pruning.sql).
        " UNION ALL SELECT 'n', b.room_id, b.thread_id, b.notifications, b.highlights, NULL"
        " FROM push_notification_backlog b WHERE b.user_id = $1 AND b.room_id = ANY($2::text[])"
        "   AND b.stream_position <= least($4, (SELECT position FROM follower))"
        "   AND b.stream_position > (SELECT coalesce(max(read.pos), 0) FROM read"
        "     WHERE read.room_id = b.room_id AND read.thread_id IN ('', b.thread_id))"
        " UNION ALL SELECT 'r', room_id, thread_id, 0, 0, pos FROM read"
        " UNION ALL SELECT 'f', NULL, NULL, 0, 0, position FROM follower",
        user_id,
        list(room_ids),
        list(READ_RECEIPTS),
        upto,
        FOLLOWER_NAME,
    )
    follower = 0
    counts: ThreadCounts = {}
    read: ReadPositions = {}
    for row in rows:
        if row["what"] == "n":
            threads = counts.setdefault(row["room_id"], {})
            notified, highlighted = threads.get(row["thread_id"], (0, 0))
            threads[row["thread_id"]] = (
                notified + int(row["notify"]),
                highlighted + int(row["highlight"]),
            )
        elif row["what"] == "r":
            read.setdefault(row["room_id"], {})[row["thread_id"]] = int(row["pos"])
        else:
            follower = int(row["pos"])
    return follower, counts, read


async def events_after(
    conn: asyncpg.Connection, room_ids: Sequence[str], after: int, upto: int
) -> list[Event]:
    """The events of `room_ids` in (after, upto], in stream order."""
    if not room_ids or after >= upto:
        return []
    rows = await conn.fetch(
        "SELECT event_id, stream_position, json FROM events WHERE stream_position > $1"
        " AND stream_position <= $2 AND room_id = ANY($3::text[]) ORDER BY stream_position",
        after,
        upto,
        list(room_ids),
    )
    return [event_from_row(row) for row in rows]


@dataclass(frozen=True, slots=True)
class ListedNotification:
    event: Event
    actions: list[Any]
    ts: int
    read: bool


async def notifications_page(
    conn: asyncpg.Connection,
    user_id: str,
    before: int | None,
    limit: int,
    highlight_only: bool,
) -> list[ListedNotification]:
    """The user's notifications, newest first, before position `before` if given."""
    rows = await conn.fetch(
        # The user's rooms by a loose scan of the primary key, then each room's newest
        # rows (the key's order), merged.
        "WITH RECURSIVE rooms AS ("
        "   (SELECT room_id FROM push_notifications WHERE user_id = $1 ORDER BY room_id LIMIT 1)"
        "   UNION ALL SELECT (SELECT n.room_id FROM push_notifications n WHERE n.user_id = $1"
        "     AND n.room_id > r.room_id ORDER BY n.room_id LIMIT 1)"
        "   FROM rooms r WHERE r.room_id IS NOT NULL),"
        " page AS (SELECT p.* FROM rooms r CROSS JOIN LATERAL (SELECT * FROM push_notifications n"
        "   WHERE n.user_id = $1 AND n.room_id = r.room_id"
        "   AND ($2::bigint IS NULL OR n.stream_position < $2) AND (NOT $4 OR n.highlight)"
        "   ORDER BY n.stream_position DESC LIMIT $3) p WHERE r.room_id IS NOT NULL"
        "   ORDER BY p.stream_position DESC LIMIT $3),"
        " read AS (SELECT rc.room_id, rc.thread_id, max(x.stream_position) AS pos"
        "   FROM receipts rc JOIN events x ON x.event_id = rc.event_id WHERE rc.user_id = $1"
        "   AND rc.room_id IN (SELECT room_id FROM page) AND rc.receipt_type = ANY($5::text[])"
        "   GROUP BY rc.room_id, rc.thread_id)"
        " SELECT p.stream_position, p.actions, p.ts, e.event_id, e.json,"
        "   p.stream_position <= greatest("
        "     (SELECT max(pos) FROM read WHERE read.room_id = p.room_id AND thread_id = ''),"
        "     (SELECT max(pos) FROM read WHERE read.room_id = p.room_id"
        "       AND thread_id = p.thread_id), 0) AS read"
        " FROM page p JOIN events e ON e.event_id = p.event_id ORDER BY p.stream_position DESC",
        user_id,
        before,
        limit,
        highlight_only,
        list(READ_RECEIPTS),
    )
    return [
        ListedNotification(
            event_from_row(row),
            json.loads(row["actions"]),
            int(row["ts"]),
            bool(row["read"]),
        )
        for row in rows
    ]


def read_up_to_sql(user: str, room: str, thread: str, receipt_types: str) -> str:
    """SQL: the position up to which the user's read receipts in the room (the
    `receipt_types` parameter) read `thread`; 0 when none does."""
    return (
        "(SELECT coalesce(max(x.stream_position), 0) FROM receipts rc JOIN events x"
        f" ON x.event_id = rc.event_id WHERE rc.user_id = {user} AND rc.room_id = {room}"
        f" AND rc.receipt_type = ANY({receipt_types}::text[]) AND rc.thread_id IN ('', {thread}))"
    )


def _still_in_sql(user: str, room: str) -> str:
    """SQL: whether the user is joined to, or invited to, the room now."""
    return (
        f"EXISTS (SELECT 1 FROM room_members m WHERE m.room_id = {room}"
        f" AND m.user_id = {user} AND m.membership IN ('join', 'invite'))"
    )


async def unread_totals(conn: asyncpg.Connection, user_ids: Sequence[str]) -> dict[str, int]:
    """Each user's unread notifications in the rooms they are in or invited to (a pushed
    badge; as Synapse, whose badge is the joined rooms' counts plus pending invites: a
    room left unread, or an invite declined, drops off it)."""
    rows = await conn.fetch(
        "SELECT u.user_id, (SELECT count(*) FROM push_notifications n"
        "   WHERE n.user_id = u.user_id AND n.stream_position > "
        + read_up_to_sql("u.user_id", "n.room_id", "n.thread_id", "$2")
        + " AND "
        + _still_in_sql("u.user_id", "n.room_id")
        + ")"
        # What pruning folded away and the user has not read (0018_push_pruning.sql).
        " + (SELECT coalesce(sum(b.notifications), 0) FROM push_notification_backlog b"
        "   WHERE b.user_id = u.user_id AND b.stream_position > "
        + read_up_to_sql("u.user_id", "b.room_id", "b.thread_id", "$2")
        + " AND "
        + _still_in_sql("u.user_id", "b.room_id")
        + ") AS unread FROM unnest($1::text[]) AS u(user_id)",
        list(user_ids),
        list(READ_RECEIPTS),
    )
    return {row["user_id"]: int(row["unread"]) for row in rows}


# Pushers


@dataclass(frozen=True, slots=True)
class PusherSettings:
    """What POST /pushers/set gives for a pusher it creates or replaces."""

    kind: str
    app_id: str
    pushkey: str
    app_display_name: str
    device_display_name: str
    profile_tag: str | None
    lang: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PusherRow(PusherSettings):
    pusher_id: int
    user_id: str
    created_ts: int

    def client_form(self) -> dict[str, Any]:
        """As GET /pushers shows it."""
        shown: dict[str, Any] = {
            "pushkey": self.pushkey,
            "kind": self.kind,
            "app_id": self.app_id,
            "app_display_name": self.app_display_name,
            "device_display_name": self.device_display_name,
            "lang": self.lang,
            "data": self.data,
        }
        if self.profile_tag is not None:
            shown["profile_tag"] = self.profile_tag
        return shown


_PUSHER_COLUMNS = (
    "pusher_id, user_id, kind, app_id, pushkey, app_display_name, device_display_name,"
    " profile_tag, lang, data, created_ts"
)


def _pusher(row: asyncpg.Record) -> PusherRow:
    # The columns are the fields (_PUSHER_COLUMNS).
    data = json.loads(row["data"])
    return PusherRow(**{**dict(row), "data": data if isinstance(data, dict) else {}})


async def set_pusher(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    token_hash: str,
    settings: PusherSettings,
    now_ms: int,
) -> None:
    """Add the pusher, or replace the user's one with the same app ID and pushkey (which
    then belongs to this token). A pusher whose token is gone is not added."""
    await conn.execute(
        "INSERT INTO pushers (user_id, token_hash, kind, app_id, pushkey, app_display_name,"
        " device_display_name, profile_tag, lang, data, created_ts)"
        " SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11"
        " WHERE EXISTS (SELECT 1 FROM access_tokens WHERE token_hash = $2)"
        " ON CONFLICT (user_id, app_id, pushkey) DO UPDATE SET token_hash = EXCLUDED.token_hash,"
        " kind = EXCLUDED.kind, app_display_name = EXCLUDED.app_display_name,"
        " device_display_name = EXCLUDED.device_display_name,"
        " profile_tag = EXCLUDED.profile_tag, lang = EXCLUDED.lang, data = EXCLUDED.data",
        user_id,
        token_hash,
        settings.kind,
        settings.app_id,
        settings.pushkey,
        settings.app_display_name,
        settings.device_display_name,
        settings.profile_tag,
        settings.lang,
        json.dumps(settings.data),
        now_ms,
    )


async def delete_pushers_with_key(
    conn: asyncpg.Connection, app_id: str, pushkey: str, *, except_user: str | None = None
) -> int:
    """Delete the pushers with this app ID and pushkey (of every user but `except_user`)."""
    status = await conn.execute(
        "DELETE FROM pushers WHERE app_id = $1 AND pushkey = $2"
        " AND ($3::text IS NULL OR user_id <> $3)",
        app_id,
        pushkey,
        except_user,
    )
    return rows_affected(status)


async def delete_user_pusher(
    conn: asyncpg.Connection, user_id: str, app_id: str, pushkey: str
) -> None:
    await conn.execute(
        "DELETE FROM pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3",
        user_id,
        app_id,
        pushkey,
    )


async def delete_pusher(conn: asyncpg.Connection, pusher_id: int) -> None:
    await conn.execute("DELETE FROM pushers WHERE pusher_id = $1", pusher_id)


async def pushers_of(conn: asyncpg.Connection, user_id: str) -> list[PusherRow]:
    rows = await conn.fetch(
        f"SELECT {_PUSHER_COLUMNS} FROM pushers WHERE user_id = $1 ORDER BY pusher_id", user_id
    )
    return [_pusher(row) for row in rows]


async def pushers_of_users(conn: asyncpg.Connection, user_ids: Sequence[str]) -> list[PusherRow]:
    """The users' HTTP pushers (email pushers are homeserver/email's: notifier.py)."""
    rows = await conn.fetch(
        f"SELECT {_PUSHER_COLUMNS} FROM pushers WHERE user_id = ANY($1::text[])"
        " AND kind = 'http' ORDER BY pusher_id",
        list(user_ids),
    )
    return [_pusher(row) for row in rows]


async def pusher(conn: asyncpg.Connection, pusher_id: int) -> PusherRow | None:
    row = await conn.fetchrow(
        f"SELECT {_PUSHER_COLUMNS} FROM pushers WHERE pusher_id = $1", pusher_id
    )
    return _pusher(row) if row is not None else None


async def users_with_pushers(conn: asyncpg.Connection, user_ids: Sequence[str]) -> set[str]:
    rows = await conn.fetch(
        "SELECT DISTINCT user_id FROM pushers WHERE user_id = ANY($1::text[])", list(user_ids)
    )
    return {row["user_id"] for row in rows}


# Outbox


@dataclass(frozen=True, slots=True)
class OutboxRow:
    seq: int
    pusher_id: int
    stream_position: int
    notification: dict[str, Any]
    tweaks: dict[str, Any]


async def insert_outbox(
    conn: asyncpg.Connection,
    pusher_ids: Sequence[int],
    positions: Sequence[int],
    notifications: Sequence[str],
    tweaks: Sequence[str],
    now_ms: int,
) -> list[int]:
    """Queue notifications (JSON) for pushers; their sequence numbers, in order."""
    if not pusher_ids:
        return []
    rows = await conn.fetch(
        "INSERT INTO push_outbox (pusher_id, stream_position, notification, tweaks, created_ts)"
        " SELECT p, s, n, t, $5 FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[])"
        " WITH ORDINALITY AS u(p, s, n, t, i) ORDER BY i RETURNING seq",
        list(pusher_ids),
        list(positions),
        list(notifications),
        list(tweaks),
        now_ms,
    )
    return sorted(row["seq"] for row in rows)


async def outbox_after(
    conn: asyncpg.Connection, pusher_id: int, after_seq: int, limit: int
) -> list[OutboxRow]:
    rows = await conn.fetch(
        "SELECT seq, pusher_id, stream_position, notification, tweaks FROM push_outbox"
        " WHERE pusher_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        pusher_id,
        after_seq,
        limit,
    )
    return [
        OutboxRow(
            row["seq"],
            row["pusher_id"],
            row["stream_position"],
            json.loads(row["notification"]),
            json.loads(row["tweaks"]),
        )
        for row in rows
    ]


async def delete_outbox(conn: asyncpg.Connection, seqs: Sequence[int]) -> None:
    await conn.execute("DELETE FROM push_outbox WHERE seq = ANY($1::bigint[])", list(seqs))


async def pushers_with_outbox(conn: asyncpg.Connection) -> list[int]:
    return await fetch_column(conn, "SELECT DISTINCT pusher_id FROM push_outbox")
