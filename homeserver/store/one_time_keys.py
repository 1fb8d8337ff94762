"""One-time and fallback keys: a supply each device uploads and others claim; not in the log
(migrations: e2e_one_time_keys, e2e_fallback_keys)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from homeserver.store.unnest import columns


@dataclass(frozen=True, slots=True)
class ClaimedKey:
    user_id: str
    device_id: str
    algorithm: str
    key_id: str
    key_json: str


# A key of a device counts only if uploaded since the device (ID) was last created: the
# keys of a deleted device never reach a new device that reuses its ID.
_CURRENT = (
    "EXISTS (SELECT 1 FROM devices d WHERE d.user_id = k.user_id"
    " AND d.device_id = k.device_id AND k.uploaded_ts >= d.created_ts)"
)


async def existing_one_time_keys(
    conn: asyncpg.Connection, user_id: str, device_id: str, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """(algorithm, key ID) -> JSON of those of `keys` the device already holds."""
    rows = await conn.fetch(
        "SELECT k.algorithm, k.key_id, k.key_json FROM e2e_one_time_keys k"
        " JOIN unnest($3::text[], $4::text[]) AS w(algorithm, key_id)"
        "   ON w.algorithm = k.algorithm AND w.key_id = k.key_id"
        f" WHERE k.user_id = $1 AND k.device_id = $2 AND {_CURRENT}",
        user_id,
        device_id,
        [algorithm for algorithm, _ in keys],
        [key_id for _, key_id in keys],
    )
    return {(r["algorithm"], r["key_id"]): r["key_json"] for r in rows}


async def add_one_time_keys(
    conn: asyncpg.Connection,
    user_id: str,
    device_id: str,
    keys: Sequence[tuple[str, str, str]],
    now_ms: int,
) -> None:
    """Store (algorithm, key ID, JSON) keys; one already held (the same) is kept as is."""
    if not keys:
        return
    await conn.execute(
        "INSERT INTO e2e_one_time_keys"
        " (user_id, device_id, algorithm, key_id, key_json, uploaded_ts)"
        " SELECT $1, $2, w.algorithm, w.key_id, w.key_json, $6"
        " FROM unnest($3::text[], $4::text[], $5::text[]) AS w(algorithm, key_id, key_json)"
        " ON CONFLICT (user_id, device_id, algorithm, key_id) DO UPDATE"
        " SET key_json = EXCLUDED.key_json, uploaded_ts = EXCLUDED.uploaded_ts",
        user_id,
        device_id,
        *columns(keys, 3),
        now_ms,
    )


async def forget_stale_keys(conn: asyncpg.Connection, user_id: str, device_id: str) -> None:
    """Drop the keys a deleted device of the same ID left behind."""
    await conn.execute(
        "DELETE FROM e2e_one_time_keys k WHERE k.user_id = $1 AND k.device_id = $2"
        f" AND NOT {_CURRENT}",
        user_id,
        device_id,
    )
    await conn.execute(
        "DELETE FROM e2e_fallback_keys k WHERE k.user_id = $1 AND k.device_id = $2"
        f" AND NOT {_CURRENT}",
        user_id,
        device_id,
    )


async def key_counts_many(
    conn: asyncpg.Connection, devices: Sequence[tuple[str, str]]
) -> list[tuple[dict[str, int], list[str]]]:
    """For many (user ID, device ID): the one-time key counts and the algorithms of the
    unused fallback keys, in one statement, in the order asked."""
    rows = await conn.fetch(
        "WITH w AS (SELECT * FROM unnest($1::text[], $2::text[]) WITH ORDINALITY"
        "   AS w(user_id, device_id, n))"
        " SELECT w.n, FALSE AS fallback, k.algorithm, count(*) AS keys FROM w"
        " JOIN e2e_one_time_keys k ON k.user_id = w.user_id AND k.device_id = w.device_id"
        f" WHERE {_CURRENT} GROUP BY w.n, k.algorithm"
        " UNION ALL SELECT w.n, TRUE, k.algorithm, 0 FROM w"
        " JOIN e2e_fallback_keys k ON k.user_id = w.user_id AND k.device_id = w.device_id"
        f" WHERE NOT k.used AND {_CURRENT}",
        *columns(devices, 2),
    )
    found: list[tuple[dict[str, int], list[str]]] = [({}, []) for _ in devices]
    for row in rows:
        counts, fallback = found[row["n"] - 1]
        if row["fallback"]:
            fallback.append(row["algorithm"])
        else:
            counts[row["algorithm"]] = int(row["keys"])
    for _, fallback in found:
        fallback.sort()
    return found


async def set_fallback_key(
    conn: asyncpg.Connection,
    user_id: str,
    device_id: str,
    algorithm: str,
    key_id: str,
    key_json: str,
    now_ms: int,
) -> None:
    """The device's fallback key for `algorithm`, unused; the same key uploaded again keeps
    its used flag (a client re-sending its current key has not replaced it)."""
    await conn.execute(
        "INSERT INTO e2e_fallback_keys"
        " (user_id, device_id, algorithm, key_id, key_json, used, uploaded_ts)"
        " VALUES ($1, $2, $3, $4, $5, FALSE, $6)"
        " ON CONFLICT (user_id, device_id, algorithm) DO UPDATE"
        " SET key_id = EXCLUDED.key_id, key_json = EXCLUDED.key_json,"
        " uploaded_ts = EXCLUDED.uploaded_ts,"
        " used = e2e_fallback_keys.used AND e2e_fallback_keys.key_id = EXCLUDED.key_id"
        "   AND e2e_fallback_keys.key_json = EXCLUDED.key_json",
        user_id,
        device_id,
        algorithm,
        key_id,
        key_json,
        now_ms,
    )


async def claim(
    conn: asyncpg.Connection, wanted: Sequence[tuple[str, str, str]]
) -> list[ClaimedKey]:
    """Take one one-time key of each (user, device, algorithm) in `wanted`, deleting it, in
    one statement; where none is left, the device's fallback key, then marked used.

    Rows another claim has locked are skipped (SKIP LOCKED), so two concurrent claims
    never take the same key and never wait on each other; a device whose every key
    is being taken falls back as if it had none left.
    """
    if not wanted:
        return []
    rows = await conn.fetch(
        "WITH picked AS ("
        "  SELECT p.user_id, p.device_id, p.algorithm, p.key_id"
        "  FROM unnest($1::text[], $2::text[], $3::text[]) AS w(user_id, device_id, algorithm)"
        "  CROSS JOIN LATERAL (SELECT k.user_id, k.device_id, k.algorithm, k.key_id"
        "    FROM e2e_one_time_keys k WHERE k.user_id = w.user_id"
        "    AND k.device_id = w.device_id AND k.algorithm = w.algorithm"
        f"    AND {_CURRENT}"
        "    ORDER BY k.key_id LIMIT 1 FOR UPDATE SKIP LOCKED) p"
        ")"
        " DELETE FROM e2e_one_time_keys t USING picked"
        " WHERE t.user_id = picked.user_id AND t.device_id = picked.device_id"
        " AND t.algorithm = picked.algorithm AND t.key_id = picked.key_id"
        " RETURNING t.user_id, t.device_id, t.algorithm, t.key_id, t.key_json",
        *columns(wanted, 3),
    )
    claimed = [
        ClaimedKey(r["user_id"], r["device_id"], r["algorithm"], r["key_id"], r["key_json"])
        for r in rows
    ]
    got = {(c.user_id, c.device_id, c.algorithm) for c in claimed}
    missing = [w for w in wanted if w not in got]
    if missing:
        rows = await conn.fetch(
            "UPDATE e2e_fallback_keys k SET used = TRUE"
            " FROM unnest($1::text[], $2::text[], $3::text[]) AS w(user_id, device_id, algorithm)"
            " WHERE k.user_id = w.user_id AND k.device_id = w.device_id"
            f" AND k.algorithm = w.algorithm AND {_CURRENT}"
            " RETURNING k.user_id, k.device_id, k.algorithm, k.key_id, k.key_json",
            *columns(missing, 3),
        )
        claimed += [
            ClaimedKey(r["user_id"], r["device_id"], r["algorithm"], r["key_id"], r["key_json"])
            for r in rows
        ]
    return claimed
