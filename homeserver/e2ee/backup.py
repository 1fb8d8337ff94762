"""Server-side key backup (/room_keys): versions of a user's backup, and the room keys the
client encrypted into it. Outside the log (store/room_keys.py says why).

A version's keys are replaced by the spec's rule: a verified copy beats an
unverified one; then the lower `first_message_index` wins; then the lower
`forwarded_count`. Writing to a version that is not the current one is refused
with M_WRONG_ROOM_KEYS_VERSION and the current version, as the spec requires.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from homeserver.errors import MatrixError, bad_json, invalid_param, not_found
from homeserver.events.canonical import decode, encode
from homeserver.events.model import JsonDict
from homeserver.store import room_keys as backup_store
from homeserver.store.room_keys import BackedUpKey, BackupVersion

MAX_VERSION = 2**62


def no_backup() -> MatrixError:
    return not_found("No current backup version.")


def unknown_version(version: str) -> MatrixError:
    return not_found(f"Unknown backup version {version[:40]!r}.")


def parse_version(version: str) -> int:
    """A version as the path or query names it; anything we never handed out is unknown."""
    if not version.isascii() or not version.isdigit() or int(version) > MAX_VERSION:
        raise unknown_version(version)
    return int(version)


def _number_or_none(version: str) -> int | None:
    try:
        return parse_version(version)
    except MatrixError:
        return None


def _version_json(found: BackupVersion, count: int) -> JsonDict:
    return {
        "algorithm": found.algorithm,
        "auth_data": decode(found.auth_data),
        "version": str(found.version),
        "etag": str(found.etag),
        "count": count,
    }


def _key_json(key: BackedUpKey) -> JsonDict:
    return {
        "first_message_index": key.first_message_index,
        "forwarded_count": key.forwarded_count,
        "is_verified": key.is_verified,
        "session_data": decode(key.session_data),
    }


def replaces(new: BackedUpKey, old: BackedUpKey | None) -> bool:
    """Whether an uploaded key takes the place of the one backed up for its session."""
    if old is None:
        return True
    if new.is_verified != old.is_verified:
        return new.is_verified
    if new.first_message_index != old.first_message_index:
        return new.first_message_index < old.first_message_index
    return new.forwarded_count < old.forwarded_count


def _parse_key(room_id: str, session_id: str, value: object) -> BackedUpKey:
    if not isinstance(value, dict):
        raise bad_json(f"The key of session {session_id[:80]!r} must be an object.")
    index, forwarded, verified, data = (
        value.get(name)
        for name in ("first_message_index", "forwarded_count", "is_verified", "session_data")
    )
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 2**53:
        raise bad_json("first_message_index must be a non-negative integer.")
    if not isinstance(forwarded, int) or isinstance(forwarded, bool) or not 0 <= forwarded < 2**53:
        raise bad_json("forwarded_count must be a non-negative integer.")
    if not isinstance(verified, bool):
        raise bad_json("is_verified must be a boolean.")
    if not isinstance(data, dict):
        raise bad_json("session_data must be an object.")
    return BackedUpKey(room_id, session_id, index, forwarded, verified, encode(data).decode())


def parse_rooms(body: Mapping[str, Any]) -> list[BackedUpKey]:
    """`{rooms: {room ID: {sessions: {session ID: key}}}}` as keys."""
    rooms = body.get("rooms")
    if not isinstance(rooms, dict):
        raise bad_json("rooms must be an object.")
    found: list[BackedUpKey] = []
    for room_id, room in rooms.items():
        found += parse_sessions(room_id, room)
    return found


def parse_sessions(room_id: str, body: object) -> list[BackedUpKey]:
    sessions = body.get("sessions") if isinstance(body, dict) else None
    if not isinstance(sessions, dict):
        raise bad_json("sessions must be an object.")
    return [_parse_key(room_id, session_id, key) for session_id, key in sessions.items()]


async def _named_version(
    conn: asyncpg.Connection, user_id: str, version: str | None
) -> backup_store.BackupVersion:
    """The version named (None: the current one); 404 when there is none."""
    if version is None:
        found = await backup_store.current_version(conn, user_id)
        if found is None:
            raise no_backup()
        return found
    found = await backup_store.version(conn, user_id, parse_version(version))
    if found is None:
        raise unknown_version(version)
    return found


class BackupService:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # Versions

    async def create_version(self, user_id: str, algorithm: str, auth_data: JsonDict) -> str:
        async with self._pool.acquire() as conn, conn.transaction():
            await backup_store.lock_backup(conn, user_id)
            number = await backup_store.create_version(
                conn, user_id, algorithm, encode(auth_data).decode()
            )
        return str(number)

    async def get_version(self, user_id: str, version: str | None) -> JsonDict:
        async with self._pool.acquire() as conn:
            found = await _named_version(conn, user_id, version)
            count = await backup_store.count(conn, user_id, found.version)
        return _version_json(found, count)

    async def update_version(
        self, user_id: str, version: str, algorithm: str, auth_data: JsonDict, named: str | None
    ) -> None:
        if named is not None and named != version:
            raise invalid_param("The version in the body does not match the version in the path.")
        async with self._pool.acquire() as conn, conn.transaction():
            await backup_store.lock_backup(conn, user_id)
            found = await _named_version(conn, user_id, version)
            if found.algorithm != algorithm:
                raise invalid_param("The algorithm of a backup version cannot change.")
            await backup_store.update_auth_data(
                conn, user_id, found.version, encode(auth_data).decode()
            )

    async def delete_version(self, user_id: str, version: str | None) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await backup_store.lock_backup(conn, user_id)
            found = await _named_version(conn, user_id, version)
            await backup_store.delete_version(conn, user_id, found.version)

    # Keys

    async def put_keys(self, user_id: str, version: str, keys: list[BackedUpKey]) -> JsonDict:
        """Store the keys that beat what the version holds; {etag, count}."""
        async with self._pool.acquire() as conn, conn.transaction():
            await backup_store.lock_backup(conn, user_id)
            current = await backup_store.current_version(conn, user_id)
            if current is None:
                raise no_backup()
            if _number_or_none(version) != current.version:
                raise MatrixError(
                    403,
                    "M_WRONG_ROOM_KEYS_VERSION",
                    "Wrong backup version.",
                    current_version=str(current.version),
                )
            held = {
                (key.room_id, key.session_id): key
                for key in await backup_store.keys_of_sessions(
                    conn, user_id, current.version, [(k.room_id, k.session_id) for k in keys]
                )
            }
            chosen: dict[tuple[str, str], BackedUpKey] = {}
            for key in keys:
                slot = (key.room_id, key.session_id)
                if replaces(key, chosen.get(slot, held.get(slot))):
                    chosen[slot] = key
            etag = current.etag
            if chosen:
                await backup_store.put_keys(conn, user_id, current.version, list(chosen.values()))
                etag = await backup_store.bump_etag(conn, user_id, current.version)
            count = await backup_store.count(conn, user_id, current.version)
        return {"etag": str(etag), "count": count}

    async def get_keys(
        self, user_id: str, version: str, room_id: str | None, session_id: str | None
    ) -> JsonDict:
        async with self._pool.acquire() as conn:
            number = (await _named_version(conn, user_id, version)).version
            keys = await backup_store.keys(conn, user_id, number, room_id, session_id)
        if session_id is not None:
            if not keys:
                raise not_found("No backed-up key for this session.")
            return _key_json(keys[0])
        if room_id is not None:
            return {"sessions": {key.session_id: _key_json(key) for key in keys}}
        rooms: dict[str, JsonDict] = {}
        for key in keys:
            rooms.setdefault(key.room_id, {"sessions": {}})["sessions"][key.session_id] = _key_json(
                key
            )
        return {"rooms": rooms}

    async def delete_keys(
        self, user_id: str, version: str, room_id: str | None, session_id: str | None
    ) -> JsonDict:
        async with self._pool.acquire() as conn, conn.transaction():
            await backup_store.lock_backup(conn, user_id)
            found = await _named_version(conn, user_id, version)
            number, etag = found.version, found.etag
            if await backup_store.delete_keys(conn, user_id, number, room_id, session_id):
                etag = await backup_store.bump_etag(conn, user_id, number)
            count = await backup_store.count(conn, user_id, number)
        return {"etag": str(etag), "count": count}
