"""Reports of events, rooms and users: facts of the moderation chain, which only admins read.

A user reports only what they can see (rooms/access.py decides): an event whose
room's history visibility shows it to them, a room they know of, a user of
this server. Anything else answers 404 M_NOT_FOUND as if it did not exist, so
a report reveals nothing. The report is then appended to the moderation chain
(`~moderation:<server>`) as a fact of its own, sent by the reporter; the
projection `event_reports`, `room_reports`, `user_reports` (projections/reports.py)
is what admins list.
"""

from __future__ import annotations

import asyncpg

from homeserver.errors import not_found
from homeserver.events import types
from homeserver.events.content.reports import parse_report_fact
from homeserver.events.model import Draft, JsonDict
from homeserver.log.appender import Appender
from homeserver.rooms.access import knows_room, room_access
from homeserver.store import accounts as account_store
from homeserver.store import events as event_store

EVENT_NOT_FOUND = "Unable to report event: it does not exist or you aren't able to see it."


class ReportService:
    def __init__(self, pool: asyncpg.Pool, appender: Appender, server_name: str) -> None:
        self._pool = pool
        self._appender = appender
        self._server_name = server_name
        self._chain = types.moderation_chain(server_name)

    async def report_event(
        self, reporter: str, room_id: str, event_id: str, reason: str | None, score: int | None
    ) -> int:
        """Report an event the reporter can see; its report's ID.

        Whom the reporter ignores does not matter: ignoring a sender is often
        what one does when reporting them, and they saw the event before. A
        redacted event is not found (as Synapse: its content is gone for them).
        """
        async with self._pool.acquire() as conn:
            access = await room_access(conn, reporter, room_id)
            event = await event_store.event_by_id(conn, event_id)
            if event is None or not access.sees(event):
                raise not_found(EVENT_NOT_FOUND)
            if await event_store.redactions_of(conn, [event_id]):
                raise not_found(EVENT_NOT_FOUND)
        content: JsonDict = {"room_id": room_id, "event_id": event_id}
        return await self._report(reporter, types.REPORT_EVENT, content, reason, score)

    async def report_room(self, reporter: str, room_id: str, reason: str | None) -> int:
        """Report a room the reporter knows of (not necessarily joined, as the spec says)."""
        async with self._pool.acquire() as conn:
            if not await knows_room(conn, reporter, room_id):
                raise not_found("The room was not found.")
        return await self._report(reporter, types.REPORT_ROOM, {"room_id": room_id}, reason)

    async def report_user(self, reporter: str, user_id: str, reason: str | None) -> int:
        """Report a user of this server (the spec's 404 for one it does not have)."""
        _, _, server = user_id.partition(":")
        async with self._pool.acquire() as conn:
            if server != self._server_name or not await account_store.user_exists(conn, user_id):
                raise not_found("The user was not found.")
        return await self._report(reporter, types.REPORT_USER, {"user_id": user_id}, reason)

    async def _report(
        self,
        reporter: str,
        event_type: str,
        content: JsonDict,
        reason: str | None,
        score: int | None = None,
    ) -> int:
        if reason is not None:
            content["reason"] = reason
        if score is not None:
            content["score"] = score
        parse_report_fact(event_type, content)  # refused here, not under the append lock
        event = await self._appender.append(Draft(self._chain, reporter, event_type, content))
        return event.stream_position
