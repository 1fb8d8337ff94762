"""Third-party IDs (email addresses; phone numbers an admin sets): bindings (a projection,
by keyed hash), their addresses (secret, erasable), validation sessions."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class Validation:
    sid: str
    client_secret: str
    medium: str
    address: str
    address_hash: str
    purpose: str
    send_attempt: int
    next_link: str | None
    token_hash: str | None
    token_expires_ts: int
    failed_attempts: int
    validated_ts: int | None


@dataclass(frozen=True, slots=True)
class Binding:
    medium: str
    address: str | None  # None if erased meanwhile
    address_hash: str
    validated_ts: int
    added_ts: int


async def server_secret(conn: asyncpg.Connection, name: str) -> bytes:
    """The secret called `name`, made on first use; every process reads the same one."""
    await conn.execute(
        "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        name,
        secrets.token_bytes(32),
    )
    return bytes(await conn.fetchval("SELECT value FROM server_secrets WHERE name = $1", name))


# --- bindings ---------------------------------------------------------------------------


async def owner(conn: asyncpg.Connection, medium: str, address_hash: str) -> str | None:
    value = await conn.fetchval(
        "SELECT user_id FROM user_threepids WHERE medium = $1 AND address_hash = $2",
        medium,
        address_hash,
    )
    return str(value) if value is not None else None


async def owners(conn: asyncpg.Connection, address_hashes: list[str]) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT address_hash, user_id FROM user_threepids WHERE address_hash = ANY($1::text[])",
        address_hashes,
    )
    return {row["address_hash"]: row["user_id"] for row in rows}


async def legacy_admin_threepids(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """What PUT /_synapse/admin/v2/users stored before the log held bindings (0023)."""
    return list(
        await conn.fetch(
            "SELECT medium, address, user_id, added_at, validated_at"
            " FROM admin_threepids_before_email ORDER BY user_id"
        )
    )


async def forget_legacy_admin_threepid(conn: asyncpg.Connection, medium: str, address: str) -> None:
    await conn.execute(
        "DELETE FROM admin_threepids_before_email WHERE medium = $1 AND address = $2",
        medium,
        address,
    )


async def bindings(conn: asyncpg.Connection, user_id: str) -> list[Binding]:
    rows = await conn.fetch(
        "SELECT t.medium, a.address, t.address_hash, t.validated_ts, t.added_ts"
        " FROM user_threepids t LEFT JOIN threepid_addresses a USING (address_hash)"
        " WHERE t.user_id = $1 ORDER BY t.added_ts, t.address_hash",
        user_id,
    )
    return [
        Binding(r["medium"], r["address"], r["address_hash"], r["validated_ts"], r["added_ts"])
        for r in rows
    ]


async def keep_address(
    conn: asyncpg.Connection, medium: str, address_hash: str, address: str, now_ms: int
) -> None:
    await conn.execute(
        "INSERT INTO threepid_addresses (medium, address_hash, address, kept_ts)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (medium, address_hash)"
        " DO UPDATE SET address = EXCLUDED.address, kept_ts = EXCLUDED.kept_ts",
        medium,
        address_hash,
        address,
        now_ms,
    )


async def erase_address(conn: asyncpg.Connection, address_hash: str) -> None:
    """Forget the address behind a hash everywhere it is kept (not the log: it has only
    the hash), unless an account holds it (again). The hash covers the medium."""
    await conn.execute(
        "DELETE FROM threepid_addresses a WHERE address_hash = $1"
        " AND NOT EXISTS (SELECT 1 FROM user_threepids t WHERE t.address_hash = a.address_hash)",
        address_hash,
    )
    await conn.execute("DELETE FROM threepid_validations WHERE address_hash = $1", address_hash)


async def erase_unbound_addresses(conn: asyncpg.Connection, kept_before_ms: int) -> None:
    """Forget addresses kept for a binding that was never appended (a refused sign-up),
    once `kept_before_ms` says its append is over."""
    await conn.execute(
        "DELETE FROM threepid_addresses a WHERE kept_ts < $1 AND NOT EXISTS"
        " (SELECT 1 FROM user_threepids t WHERE t.address_hash = a.address_hash)",
        kept_before_ms,
    )


# --- validations ------------------------------------------------------------------------

_VALIDATION = (
    "sid, client_secret, medium, address, address_hash, purpose, send_attempt, next_link,"
    " token_hash, token_expires_ts, failed_attempts, validated_ts"
)


def _validation(row: asyncpg.Record) -> Validation:
    return Validation(*(row[column.strip()] for column in _VALIDATION.split(",")))


async def validation(conn: asyncpg.Connection, sid: str) -> Validation | None:
    row = await conn.fetchrow(f"SELECT {_VALIDATION} FROM threepid_validations WHERE sid = $1", sid)
    return None if row is None else _validation(row)


async def validation_for(
    conn: asyncpg.Connection, client_secret: str, medium: str, address_hash: str, purpose: str
) -> Validation | None:
    row = await conn.fetchrow(
        f"SELECT {_VALIDATION} FROM threepid_validations WHERE client_secret = $1"
        " AND medium = $2 AND address_hash = $3 AND purpose = $4",
        client_secret,
        medium,
        address_hash,
        purpose,
    )
    return None if row is None else _validation(row)


async def create_validation(
    conn: asyncpg.Connection,
    *,
    sid: str,
    client_secret: str,
    medium: str,
    address: str,
    address_hash: str,
    purpose: str,
    send_attempt: int,
    next_link: str | None,
    token_hash: str,
    token_expires_ts: int,
    now_ms: int,
) -> bool:
    """Insert a new session; False if one for the same secret, address and purpose exists."""
    inserted = await conn.fetchval(
        "INSERT INTO threepid_validations (sid, client_secret, medium, address, address_hash,"
        " purpose, send_attempt, next_link, token_hash, token_expires_ts, created_ts)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        " ON CONFLICT (client_secret, medium, address_hash, purpose) DO NOTHING RETURNING 1",
        sid,
        client_secret,
        medium,
        address,
        address_hash,
        purpose,
        send_attempt,
        next_link,
        token_hash,
        token_expires_ts,
        now_ms,
    )
    return inserted is not None


async def claim_send(
    conn: asyncpg.Connection,
    sid: str,
    send_attempt: int,
    next_link: str | None,
    token_hash: str,
    token_expires_ts: int,
) -> bool:
    """A new token for a later send_attempt; False if this attempt was already made."""
    updated = await conn.fetchval(
        "UPDATE threepid_validations SET send_attempt = $2, next_link = $3, token_hash = $4,"
        " token_expires_ts = $5, failed_attempts = 0 WHERE sid = $1 AND send_attempt < $2"
        " AND validated_ts IS NULL RETURNING 1",
        sid,
        send_attempt,
        next_link,
        token_hash,
        token_expires_ts,
    )
    return updated is not None


async def undo_send(conn: asyncpg.Connection, previous: Validation | None, sid: str) -> None:
    """The email was not sent: the session as it was before (or gone, if it was new)."""
    if previous is None:
        await delete_validation(conn, sid)
        return
    await conn.execute(
        "UPDATE threepid_validations SET send_attempt = $2, next_link = $3, token_hash = $4,"
        " token_expires_ts = $5 WHERE sid = $1",
        sid,
        previous.send_attempt,
        previous.next_link,
        previous.token_hash,
        previous.token_expires_ts,
    )


async def mark_validated(conn: asyncpg.Connection, sid: str, token_hash: str, now_ms: int) -> bool:
    """Use the token (once): True if it was the session's live token."""
    updated = await conn.fetchval(
        "UPDATE threepid_validations SET validated_ts = $3, token_hash = NULL"
        " WHERE sid = $1 AND token_hash = $2 AND token_expires_ts > $3 RETURNING 1",
        sid,
        token_hash,
        now_ms,
    )
    return updated is not None


async def count_failure(conn: asyncpg.Connection, sid: str, max_failures: int) -> None:
    """A wrong token: after `max_failures` the session's token is dead."""
    await conn.execute(
        "UPDATE threepid_validations SET failed_attempts = failed_attempts + 1,"
        " token_hash = CASE WHEN failed_attempts + 1 >= $2 THEN NULL ELSE token_hash END"
        " WHERE sid = $1",
        sid,
        max_failures,
    )


async def delete_stale_validations(conn: asyncpg.Connection, min_created_ts: int) -> None:
    await conn.execute("DELETE FROM threepid_validations WHERE created_ts < $1", min_created_ts)


async def erase_validations(conn: asyncpg.Connection, medium: str, address_hash: str) -> None:
    await conn.execute(
        "DELETE FROM threepid_validations WHERE medium = $1 AND address_hash = $2",
        medium,
        address_hash,
    )


async def delete_validation(conn: asyncpg.Connection, sid: str) -> None:
    await conn.execute("DELETE FROM threepid_validations WHERE sid = $1", sid)
