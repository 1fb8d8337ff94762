"""Reads of the logged E2EE projections: device keys, cross-signing keys, signatures, and
whose device list changed when (projections/e2ee.py writes them)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class DeviceKeysRow:
    user_id: str
    device_id: str
    key_json: str
    display_name: str | None


@dataclass(frozen=True, slots=True)
class SignatureRow:
    signer_id: str
    key_id: str
    target_user_id: str
    target_key_id: str
    signature: str


async def device_keys(conn: asyncpg.Connection, user_ids: Sequence[str]) -> list[DeviceKeysRow]:
    """The identity keys of every current device of `user_ids` that uploaded some."""
    rows = await conn.fetch(
        "SELECT k.user_id, k.device_id, k.key_json, d.display_name FROM e2e_device_keys k"
        " JOIN devices d ON d.user_id = k.user_id AND d.device_id = k.device_id"
        " WHERE k.user_id = ANY($1::text[]) ORDER BY k.user_id, k.device_id",
        list(user_ids),
    )
    return [
        DeviceKeysRow(r["user_id"], r["device_id"], r["key_json"], r["display_name"]) for r in rows
    ]


async def device_key_json(conn: asyncpg.Connection, user_id: str, device_id: str) -> str | None:
    value = await conn.fetchval(
        "SELECT key_json FROM e2e_device_keys WHERE user_id = $1 AND device_id = $2",
        user_id,
        device_id,
    )
    return str(value) if value is not None else None


async def cross_signing_keys(
    conn: asyncpg.Connection, user_ids: Sequence[str]
) -> dict[str, dict[str, str]]:
    """user ID -> usage -> the key's JSON."""
    rows = await conn.fetch(
        "SELECT user_id, usage, key_json FROM e2e_cross_signing_keys"
        " WHERE user_id = ANY($1::text[])",
        list(user_ids),
    )
    found: dict[str, dict[str, str]] = {}
    for row in rows:
        found.setdefault(row["user_id"], {})[row["usage"]] = row["key_json"]
    return found


async def signatures_on(
    conn: asyncpg.Connection, user_ids: Sequence[str], seen_by: str
) -> list[SignatureRow]:
    """Signatures uploaded on the keys of `user_ids` that `seen_by` may see: the owner's
    own (on their devices and master key), and those `seen_by` made with their
    user-signing key (which the spec shows to no one else)."""
    rows = await conn.fetch(
        "SELECT signer_id, key_id, target_user_id, target_key_id, signature FROM e2e_signatures"
        " WHERE target_user_id = ANY($1::text[])"
        " AND (signer_id = target_user_id OR signer_id = $2)",
        list(user_ids),
        seen_by,
    )
    return [
        SignatureRow(
            r["signer_id"], r["key_id"], r["target_user_id"], r["target_key_id"], r["signature"]
        )
        for r in rows
    ]


async def existing_users(conn: asyncpg.Connection, user_ids: Sequence[str]) -> set[str]:
    rows = await conn.fetch(
        "SELECT user_id FROM users WHERE user_id = ANY($1::text[])", list(user_ids)
    )
    return {row["user_id"] for row in rows}


async def devices_of(conn: asyncpg.Connection, user_ids: Sequence[str]) -> set[tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT user_id, device_id FROM devices WHERE user_id = ANY($1::text[])", list(user_ids)
    )
    return {(row["user_id"], row["device_id"]) for row in rows}


# Device lists: who changed, and who shares a room with whom.


async def changed_sharing_a_room(
    conn: asyncpg.Connection, user_id: str, after: int, upto: int
) -> set[str]:
    """Users whose device list changed in (after, upto] and who share a room with `user_id`
    now (the user among them when their own changed): a range of the change index,
    then one membership probe per changed user."""
    rows = await conn.fetch(
        "SELECT c.user_id FROM device_list_changes c"
        " WHERE c.stream_position > $2 AND c.stream_position <= $3"
        " AND (c.user_id = $1 OR EXISTS (SELECT 1 FROM room_members mine"
        "   JOIN room_members theirs ON theirs.room_id = mine.room_id"
        "   WHERE mine.user_id = $1 AND mine.membership = 'join'"
        "   AND theirs.user_id = c.user_id AND theirs.membership = 'join'))",
        user_id,
        after,
        upto,
    )
    return {row["user_id"] for row in rows}


# A user's membership of a room as of $2 (None: none yet), for the row aliased `m`.
_MEMBERSHIP_AS_OF = (
    "(SELECT e.json::jsonb -> 'content' ->> 'membership' FROM events e"
    " WHERE e.room_id = {m}.room_id AND e.type = 'm.room.member' AND e.state_key = {m}.user_id"
    " AND e.stream_position <= $2 ORDER BY e.stream_position DESC LIMIT 1)"
)


@dataclass(frozen=True, slots=True)
class MembershipMove:
    """Another user's membership of a room `user_id` is or was in, before and after a
    range of the log, with `user_id`'s own."""

    user_id: str
    before: str | None
    after: str
    mine_before: str | None
    mine_after: str


async def members_changed_since(
    conn: asyncpg.Connection, user_id: str, after: int, upto: int
) -> list[MembershipMove]:
    """The memberships that moved in (after, upto] in the rooms `user_id` is joined to,
    and every membership of the rooms whose own membership moved in it."""
    rows = await conn.fetch(
        "SELECT theirs.user_id, theirs.membership, mine.membership AS mine,"
        " CASE WHEN theirs.stream_position > $2 THEN "
        + _MEMBERSHIP_AS_OF.format(m="theirs")
        + " ELSE theirs.membership END AS before,"
        " CASE WHEN mine.stream_position > $2 THEN "
        + _MEMBERSHIP_AS_OF.format(m="mine")
        + " ELSE mine.membership END AS mine_before"
        " FROM room_members mine JOIN room_members theirs ON theirs.room_id = mine.room_id"
        " WHERE mine.user_id = $1 AND theirs.user_id <> $1"
        " AND mine.stream_position <= $3 AND theirs.stream_position <= $3"
        " AND (mine.stream_position > $2"
        "   OR (mine.membership = 'join' AND theirs.stream_position > $2))",
        user_id,
        after,
        upto,
    )
    return [
        MembershipMove(
            row["user_id"], row["before"], row["membership"], row["mine_before"], row["mine"]
        )
        for row in rows
    ]


async def memberships_at(
    conn: asyncpg.Connection, pairs: Collection[tuple[str, str]], position: int
) -> dict[tuple[str, str], str]:
    """Each (room, user)'s membership as of `position`, for those that had one."""
    rows = await conn.fetch(
        "SELECT m.room_id, m.user_id, "
        + _MEMBERSHIP_AS_OF.format(m="m")
        + " AS membership FROM unnest($1::text[], $3::text[]) AS m(room_id, user_id)",
        [room for room, _ in pairs],
        position,
        [user for _, user in pairs],
    )
    return {
        (row["room_id"], row["user_id"]): row["membership"]
        for row in rows
        if row["membership"] is not None
    }


async def sharing_a_room(
    conn: asyncpg.Connection, user_id: str, others: Collection[str]
) -> set[str]:
    """Which of `others` are joined to a room `user_id` is joined to."""
    if not others:
        return set()
    rows = await conn.fetch(
        "SELECT DISTINCT theirs.user_id FROM room_members mine"
        " JOIN room_members theirs ON theirs.room_id = mine.room_id"
        " WHERE mine.user_id = $1 AND mine.membership = 'join'"
        " AND theirs.user_id = ANY($2::text[]) AND theirs.membership = 'join'",
        user_id,
        list(others),
    )
    return {row["user_id"] for row in rows}


async def joined_rooms(conn: asyncpg.Connection, user_ids: Collection[str]) -> dict[str, set[str]]:
    rows = await conn.fetch(
        "SELECT user_id, room_id FROM room_members"
        " WHERE user_id = ANY($1::text[]) AND membership = 'join'",
        list(user_ids),
    )
    found: dict[str, set[str]] = {user_id: set() for user_id in user_ids}
    for row in rows:
        found[row["user_id"]].add(row["room_id"])
    return found
