"""The v1-era endpoints older clients and bots still call, read through the one sync
builder (sync/service.py) and reshaped: GET /initialSync (an initial sync), GET
/rooms/{roomId}/initialSync (an initial sync of one room, peeked at if the user is
not in it and it is world_readable) and GET /events (incremental syncs as one stream
of events, every event with its room ID).

What they carry is what /sync carries, so the rules are the builder's: history
visibility, ignored users, rooms left ("departed rooms": `archived=true`, and the
leave in /events), room account data with the tags, receipts, typing and presence.
Nothing here reads a room's events or state on its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.errors import forbidden
from homeserver.events import types
from homeserver.events.model import JsonDict
from homeserver.rooms.access import room_access
from homeserver.rooms.rendering import EventRenderer
from homeserver.store import room_directory as directory_store
from homeserver.store import rooms as room_store
from homeserver.store import sync as sync_store
from homeserver.sync.options import SyncOptions
from homeserver.sync.service import SyncService
from homeserver.sync.tokens import SyncToken

# /events reads everything since its token: no room's timeline is cut short in practice.
STREAM_LIMIT = 1000
DEFAULT_LIMIT = 10


def _options(limit: int, **more: Any) -> SyncOptions:
    return SyncOptions(timeline_limit=limit, include_room_id=True, to_device=False, **more)


def _presence(events: Iterable[JsonDict]) -> list[JsonDict]:
    """m.presence as the v1 API served it: the user ID in the content too."""
    return [
        {**event, "content": {**event["content"], "user_id": event["sender"]}} for event in events
    ]


def _ephemeral(room_id: str, room: JsonDict) -> list[JsonDict]:
    return [{**event, "room_id": room_id} for event in room.get("ephemeral", {}).get("events", [])]


def _messages(room: JsonDict, end: str) -> JsonDict:
    timeline = room["timeline"]
    return {"chunk": timeline["events"], "start": timeline["prev_batch"], "end": end}


@dataclass(eq=False)
class LegacySync:
    pool: asyncpg.Pool
    sync: SyncService
    renderer: EventRenderer

    async def initial_sync(
        self, user_id: str, device_id: str, limit: int = DEFAULT_LIMIT, archived: bool = False
    ) -> JsonDict:
        """GET /initialSync: every room of the user (and those left, if `archived`)."""
        result = await self.sync.wait_for_changes(
            user_id, device_id, None, 0, _options(limit, include_leave=archived)
        )
        body, end = result.body, str(result.token)
        rooms = body["rooms"]
        async with self.pool.acquire() as conn:
            memberships = {m.room_id: m for m in await sync_store.memberships(conn, user_id)}
            room_ids = [*rooms["join"], *rooms["invite"], *rooms["leave"]]
            public = await directory_store.published_among(conn, room_ids)
        served_invites = await self._invites(user_id, device_id, rooms["invite"])
        infos: list[JsonDict] = []
        receipts: list[JsonDict] = []
        for section, membership in (("join", "join"), ("leave", None)):
            for room_id, room in rooms[section].items():
                known = memberships.get(room_id)
                info: JsonDict = {
                    "room_id": room_id,
                    "membership": membership or (known.membership if known else "leave"),
                    "messages": _messages(room, end),
                    "state": room["state"]["events"],
                    "visibility": "public" if room_id in public else "private",
                    "account_data": room["account_data"]["events"],
                }
                infos.append(info)
                receipts += [e for e in _ephemeral(room_id, room) if e["type"] == "m.receipt"]
        for room_id, room in rooms["invite"].items():
            info = {
                "room_id": room_id,
                "membership": "invite",
                "invite_state": room["invite_state"],
                "visibility": "public" if room_id in public else "private",
            }
            if room_id in served_invites:
                info["invite"] = served_invites[room_id]
            infos.append(info)
        return {
            "end": end,
            "rooms": infos,
            "presence": _presence(body["presence"]["events"]),
            "account_data": body["account_data"]["events"],
            "receipts": receipts,
        }

    async def room_initial_sync(
        self, user_id: str, device_id: str, room_id: str, limit: int = DEFAULT_LIMIT
    ) -> JsonDict:
        """GET /rooms/{roomId}/initialSync: one room, for one who is or was in it (as of
        their leave) or, peeking, anyone when it is world_readable; else 403."""
        async with self.pool.acquire() as conn:
            access = await room_access(conn, user_id, room_id)
            public = await directory_store.is_published(conn, room_id)
        access.require_readable()
        membership = access.history.membership
        in_room = membership in ("join", "leave", "ban")
        result = await self.sync.wait_for_changes(
            user_id,
            device_id,
            None,
            0,
            _options(limit, allows_room=room_id.__eq__, include_leave=True),
            peek=frozenset() if in_room else frozenset({room_id}),
        )
        body, end = result.body, str(result.token)
        rooms = body["rooms"]
        room = rooms["join"].get(room_id) or rooms["leave"].get(room_id)
        if room is None:  # nothing to show: an empty room as of now
            room = {
                "timeline": {"events": [], "prev_batch": end},
                "state": {"events": []},
                "account_data": {"events": []},
            }
        presence = _presence(body["presence"]["events"])
        members = {e["state_key"] for e in room["state"]["events"] if e["type"] == "m.room.member"}
        return {
            "room_id": room_id,
            "membership": membership if in_room else "leave",
            "messages": _messages(room, end),
            "state": room["state"]["events"],
            "visibility": "public" if public else "private",
            "account_data": room["account_data"]["events"],
            "presence": [e for e in presence if e["sender"] in members],
            "receipts": [e for e in _ephemeral(room_id, room) if e["type"] == "m.receipt"],
        }

    async def events(
        self,
        user_id: str,
        device_id: str,
        from_token: SyncToken | None,
        timeout_ms: int,
        room_id: str | None = None,
    ) -> JsonDict:
        """GET /events: what happened since `from_token` (now, if none) as one stream,
        waiting up to `timeout_ms` for something; with `room_id`, that room's only, which
        one who is not in it may read when it is world_readable (peeking)."""
        since = from_token or await self.sync.current_token()
        peek: frozenset[str] = frozenset()
        options = _options(STREAM_LIMIT)
        if room_id is not None:
            async with self.pool.acquire() as conn:
                access = await room_access(conn, user_id, room_id)
            if access.history.membership != "join":
                if not access.may_read:
                    raise forbidden("You are not a member of this room.")
                peek = frozenset({room_id})
            options = _options(STREAM_LIMIT, allows_room=room_id.__eq__)
        result = await self.sync.wait_for_changes(
            user_id, device_id, since, timeout_ms, options, peek=peek
        )
        body = result.body
        rooms = body["rooms"]
        timeline: list[JsonDict] = []
        ephemeral: list[JsonDict] = []
        for section in ("join", "leave"):
            for shown_id, room in rooms[section].items():
                timeline += room["timeline"]["events"]
                ephemeral += _ephemeral(shown_id, room)
        timeline.sort(key=lambda event: event["origin_server_ts"])
        invites = await self._invites(user_id, device_id, rooms["invite"])
        chunk = [*invites.values(), *timeline]
        chunk += ephemeral
        chunk += _presence(body["presence"]["events"])
        return {"start": str(since), "end": str(result.token), "chunk": chunk}

    async def _invites(
        self, user_id: str, device_id: str, invited: dict[str, JsonDict]
    ) -> dict[str, JsonDict]:
        """Per room the user was invited to, the invite event (/sync shows stripped state)."""
        if not invited:
            return {}
        async with self.pool.acquire() as conn:
            found = [
                event
                for room in invited
                if (event := await room_store.state_event(conn, room, types.MEMBER, user_id))
                is not None
            ]
        served = await self.renderer.serve(found, (user_id, device_id))
        return {event.room_id: form for event, form in zip(found, served, strict=True)}
