"""The public room directory: publishing rooms, and listing them (/publicRooms).

Publishing is durable: a state event `com.linkchat.room.directory`
{"visibility": "public" | "private"} in the room's own chain, so it is
authorized like any state change under the append lock (power level for that
event type, `state_default` 50 unless the room says otherwise: room admins and
moderators, as Synapse asks of whoever may edit the canonical alias) and the
projection `room_directory` is rebuilt by replay. createRoom with
`visibility: public` appends it with the room's first events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from homeserver.errors import invalid_param, not_found
from homeserver.events import types
from homeserver.events.model import Draft, JsonDict
from homeserver.log.appender import Appender
from homeserver.projections.room_directory import PRIVATE, PUBLIC
from homeserver.search.tokens import decode_token, encode_token, int_field, str_field
from homeserver.store import room_directory as directory_store
from homeserver.store import rooms as room_store
from homeserver.store.room_directory import RoomSummary

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
_TOKEN = "since"
_FORWARD = "f"
_BACKWARD = "b"


def _token(direction: str, room: RoomSummary) -> str:
    return encode_token({"d": direction, "j": room.joined_members, "r": room.room_id})


def _parse_since(since: str) -> tuple[str, tuple[int, str]]:
    value = decode_token(since, _TOKEN)
    direction = value.get("d")
    if direction not in (_FORWARD, _BACKWARD):
        raise invalid_param("Invalid since token.")
    return str(direction), (int_field(value, "j", _TOKEN), str_field(value, "r", _TOKEN))


def _chunk_entry(room: RoomSummary) -> JsonDict:
    entry: JsonDict = {
        "room_id": room.room_id,
        "num_joined_members": room.joined_members,
        "world_readable": room.history_visibility == "world_readable",
        "guest_can_join": room.guest_access == "can_join",
    }
    optional = {
        "name": room.name,
        "topic": room.topic,
        "canonical_alias": room.canonical_alias,
        "avatar_url": room.avatar_url,
        "join_rule": room.join_rule,
        "room_type": room.room_type,
    }
    entry.update((key, value) for key, value in optional.items() if value is not None)
    return entry


@dataclass(eq=False)
class RoomDirectoryService:
    pool: asyncpg.Pool
    appender: Appender

    async def visibility(self, room_id: str) -> str:
        async with self.pool.acquire() as conn:
            if not await room_store.room_exists(conn, room_id):
                raise not_found("Room not found.")
            published = await directory_store.is_published(conn, room_id)
        return PUBLIC if published else PRIVATE

    async def set_visibility(self, user_id: str, room_id: str, visibility: str) -> None:
        """Publish or unpublish; the room's power levels decide who may (403 otherwise)."""
        if visibility not in (PUBLIC, PRIVATE):
            raise invalid_param("visibility must be 'public' or 'private'.")
        if await self.visibility(room_id) == visibility:
            # "The visibility was updated, or no change was needed": nothing to record.
            return
        await self.appender.append(
            Draft(room_id, user_id, types.ROOM_DIRECTORY, {"visibility": visibility}, state_key="")
        )

    async def public_rooms(
        self,
        *,
        limit: int | None = None,
        since: str | None = None,
        search_term: str | None = None,
        room_types: Sequence[str | None] | None = None,
    ) -> JsonDict:
        """A page of the directory: {chunk, next_batch?, prev_batch?, total_room_count_estimate}."""
        if limit is not None and limit < 0:
            raise invalid_param("limit must not be negative.")
        wanted = min(limit if limit is not None else DEFAULT_LIMIT, MAX_LIMIT)
        direction, key = _parse_since(since) if since is not None else (_FORWARD, None)
        backwards = direction == _BACKWARD
        term = search_term.strip() if search_term else None
        async with self.pool.acquire() as conn:
            page = await directory_store.public_rooms(
                conn,
                # One more than asked: it tells whether another page follows.
                limit=wanted + 1,
                search_term=term or None,
                room_types=room_types,
                after=key if not backwards else None,
                before=key if backwards else None,
            )
        rooms = page.rooms
        more = len(rooms) > wanted
        if more:
            rooms = rooms[1:] if backwards else rooms[:wanted]
        body: JsonDict = {
            "chunk": [_chunk_entry(room) for room in rooms],
            "total_room_count_estimate": page.total,
        }
        if rooms:
            # Reading backwards, the rooms we came from lie ahead; reading forwards
            # from a token, the rooms before it lie behind.
            if more or backwards:
                body["next_batch"] = _token(_FORWARD, rooms[-1])
            if more if backwards else key is not None:
                body["prev_batch"] = _token(_BACKWARD, rooms[0])
        return body
