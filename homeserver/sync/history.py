"""Room history for clients: /messages, /context and /relations, within what history
visibility allows (decided in rooms/access.py).

Pagination follows sync/tokens.py: a token `t{T}` is the gap between positions
T and T+1; backwards from T returns positions <= T, forwards positions > T. The
`end` of a page is the gap just past its last event, so pages chain with no gap
and no duplicate; `end` is left out once nothing further is visible, except going
forwards to the newest event: events may still follow.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import asyncpg

from homeserver.account_data.ignore import ignored_users
from homeserver.events import types
from homeserver.events.model import Event, JsonDict
from homeserver.rooms.access import RoomAccess, room_access, sent_by_ignored, visible_event
from homeserver.rooms.rendering import EventRenderer
from homeserver.store import events as event_store
from homeserver.store import history as history_store
from homeserver.store import relations as relation_store
from homeserver.store import rooms as room_store
from homeserver.store.history import RelationSelection
from homeserver.sync.filters import MAX_LIMIT, RoomEventFilter
from homeserver.sync.tokens import pagination_token, parse_pagination_token

Direction = Literal["b", "f"]
Viewer = tuple[str, str]  # a user ID and the device ID of their access token


@dataclass(frozen=True)
class Page:
    """Which page of a room's events is asked for (/messages, /relations)."""

    direction: Direction
    from_token: str | None = None
    to_token: str | None = None
    limit: int = 10

    @property
    def backwards(self) -> bool:
        return self.direction == "b"

    def positions(self) -> tuple[int | None, int | None]:
        """The positions its tokens name (M_INVALID_PARAM for a bad one)."""
        start = parse_pagination_token(self.from_token) if self.from_token is not None else None
        to = parse_pagination_token(self.to_token) if self.to_token is not None else None
        return start, to


def _bounds(
    positions: tuple[int | None, int | None], latest: int, *, backwards: bool, first: int
) -> tuple[int, int, int]:
    """Where a page starts (its `from`, else the log's end backwards and `first` forwards)
    and the positions (after, upto] it covers, toward its `to` (or the log's end)."""
    start, to = positions
    if start is None:
        start = latest if backwards else first
    if backwards:
        return start, (to or 0), start
    return start, start, (to if to is not None else latest)


def _shown(events: Sequence[Event], access: RoomAccess, ignored: frozenset[str]) -> list[Event]:
    """The events of a page the user is shown: none their ignored users sent, none a
    shadow-banned user sent while banned (the page's positions are within sight)."""
    return [
        event for event in events if not sent_by_ignored(event, ignored) and not access.hides(event)
    ]


def _continuation(chunk: Sequence[Event], more: bool, *, backwards: bool) -> str | None:
    """The token a next page in the same direction starts from; None after the last page."""
    if not (more and chunk):
        return None
    last = chunk[-1].stream_position
    return pagination_token(last - 1 if backwards else last)


async def _seen_event(
    conn: asyncpg.Connection, access: RoomAccess, event_id: str
) -> tuple[Event, frozenset[str]]:
    """The event of the room, if the user may see it (else 404), and whom the user ignores."""
    ignored = await ignored_users(conn, access.user_id)
    return await visible_event(conn, access, event_id, ignored), ignored


async def _page(
    conn: asyncpg.Connection,
    access: RoomAccess,
    window: tuple[int, int],
    *,
    backwards: bool,
    limit: int,
    event_filter: RoomEventFilter,
    relation: RelationSelection | None = None,
) -> tuple[list[Event], bool]:
    """Up to `limit` visible events of the room matching the filter (and relating to an
    event, if `relation` says so) in the window (after, upto], in the direction asked,
    and whether any further one exists in that window."""
    after, upto = window
    room_id = access.room_id
    if limit <= 0 or upto <= after or not event_filter.allows_room(room_id):
        return [], False
    ranges = access.history.visible_ranges(after + 1, upto)
    if backwards:
        ranges.reverse()
    selection = replace(event_filter.selection(), relation=relation)
    found: list[Event] = []
    for first, last in ranges:
        after, upto = first - 1, last
        while len(found) <= limit:
            # One more than asked: it tells whether the page is the last.
            wanted = limit + 1 - len(found)
            chunk = await history_store.room_events(
                conn, room_id, after, upto, backwards=backwards, limit=wanted, selection=selection
            )
            # An erased user's messages hidden from this user leave the page short:
            # the range is read on until it is full or exhausted.
            found += [event for event in chunk if not access.erased_for_viewer(event)]
            if len(chunk) < wanted:
                break
            if backwards:
                upto = chunk[-1].stream_position - 1
            else:
                after = chunk[-1].stream_position
        if len(found) > limit:
            break
    return found[:limit], len(found) > limit


@dataclass(eq=False)
class HistoryService:
    pool: asyncpg.Pool
    renderer: EventRenderer

    @contextlib.asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection reading one snapshot of the log: what decides what the user sees
        (memberships, shadow-bans) and the events it decides are read as of one moment,
        so a ban committed during the request cannot let an event after it through."""
        async with self.pool.acquire() as conn:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                yield conn

    async def _readable(self, conn: asyncpg.Connection, user_id: str, room_id: str) -> RoomAccess:
        """The user's access to the room's history, or 403 (rooms/access.py)."""
        access = await room_access(conn, user_id, room_id)
        access.require_readable()
        return access

    async def messages(
        self,
        viewer: Viewer,
        room_id: str,
        page: Page,
        event_filter: RoomEventFilter | None = None,
    ) -> JsonDict:
        """GET /rooms/{roomId}/messages: {chunk, start, end?, state?}."""
        chosen = event_filter or RoomEventFilter()
        limit = min(page.limit, chosen.limit_or(MAX_LIMIT), MAX_LIMIT)
        backwards, positions = page.backwards, page.positions()
        async with self._snapshot() as conn:
            access = await self._readable(conn, viewer[0], room_id)
            ignored = await ignored_users(conn, viewer[0])
            latest = await event_store.last_position(conn)
            start, after, upto = _bounds(positions, latest, backwards=backwards, first=0)
            chunk, more = await _page(
                conn, access, (after, upto), backwards=backwards, limit=limit, event_filter=chosen
            )
            members: list[Event] = []
            if chosen.lazy_load_members and chunk:
                # As of the chunk's newest event: every sender is a member by then.
                senders = [event.sender for event in chunk]
                newest = max(event.stream_position for event in chunk)
                members = await history_store.member_events_at(conn, room_id, senders, newest)
        shown = _shown(chunk, access, ignored)
        served = await self.renderer.serve([*shown, *members], viewer)
        body: JsonDict = {
            "chunk": served[: len(shown)],
            "start": page.from_token if page.from_token is not None else pagination_token(start),
        }
        if (end := _continuation(chunk, more, backwards=backwards)) is not None:
            body["end"] = end
        elif not backwards and chunk and positions[1] is None:
            # Forwards to the newest: more may follow, so the client can ask again from
            # here (as Synapse, which ends a page with `end` whenever it has events).
            body["end"] = pagination_token(chunk[-1].stream_position)
        elif limit == 0:
            # Nothing was asked for, so nothing is known to be over.
            body["end"] = body["start"]
        if chosen.lazy_load_members:
            body["state"] = served[len(shown) :]
        return body

    async def context(
        self,
        viewer: Viewer,
        room_id: str,
        event_id: str,
        limit: int = 10,
        event_filter: RoomEventFilter | None = None,
    ) -> JsonDict:
        """GET /rooms/{roomId}/context/{eventId}: the event, the events around it, the state
        after the last one returned, and tokens to paginate on from either end."""
        chosen = event_filter or RoomEventFilter()
        limit = min(limit, MAX_LIMIT)
        # As Synapse: half the limit before the event, the rest after.
        before_limit = limit // 2
        async with self._snapshot() as conn:
            access = await self._readable(conn, viewer[0], room_id)
            event, ignored = await _seen_event(conn, access, event_id)
            position = event.stream_position
            latest = await event_store.last_position(conn)
            before, _ = await _page(
                conn,
                access,
                (0, position - 1),
                backwards=True,
                limit=before_limit,
                event_filter=chosen,
            )
            after, _ = await _page(
                conn,
                access,
                (position, latest),
                backwards=False,
                limit=limit - before_limit,
                event_filter=chosen,
            )
            last = after[-1].stream_position if after else position
            state = await room_store.state_events_at(conn, room_id, last)
        state = [e for e in state if chosen.allows_event(e)]
        if chosen.lazy_load_members:
            senders = {e.sender for e in [*before, event, *after]}
            state = [e for e in state if e.type != types.MEMBER or e.state_key in senders]
        first = before[-1].stream_position if before else position
        parts = [[event], _shown(before, access, ignored), _shown(after, access, ignored), state]
        served = iter(await self.renderer.serve([e for part in parts for e in part], viewer))
        event_served, before_served, after_served, state_served = (
            [next(served) for _ in part] for part in parts
        )
        return {
            "event": event_served[0],
            "events_before": before_served,
            "events_after": after_served,
            "state": state_served,
            "start": pagination_token(first - 1),
            "end": pagination_token(last),
        }

    async def relations(
        self,
        viewer: Viewer,
        room_id: str,
        event_id: str,
        page: Page,
        *,
        rel_type: str | None = None,
        event_type: str | None = None,
    ) -> JsonDict:
        """GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]: the events
        relating to one the user may see, newest first unless `dir=f`, paginated with the
        same tokens as /messages."""
        limit = min(page.limit, MAX_LIMIT)
        backwards, positions = page.backwards, page.positions()
        async with self._snapshot() as conn:
            access = await self._readable(conn, viewer[0], room_id)
            parent, ignored = await _seen_event(conn, access, event_id)
            latest = await event_store.last_position(conn)
            _, after, upto = _bounds(
                positions, latest, backwards=backwards, first=parent.stream_position
            )
            chunk, more = await _page(
                conn,
                access,
                # Nothing before the event relates to it.
                (max(after, parent.stream_position), upto),
                backwards=backwards,
                limit=limit,
                event_filter=RoomEventFilter(),
                relation=RelationSelection(event_id, rel_type, event_type),
            )
        body: JsonDict = {
            "chunk": await self.renderer.serve(_shown(chunk, access, ignored), viewer)
        }
        if (following := _continuation(chunk, more, backwards=backwards)) is not None:
            body["next_batch"] = following
        if page.from_token is not None:
            body["prev_batch"] = page.from_token
        return body

    async def threads(
        self,
        user_id: str,
        device_id: str,
        room_id: str,
        *,
        participated: bool = False,
        from_token: str | None = None,
        limit: int = 10,
    ) -> JsonDict:
        """GET /v1/rooms/{roomId}/threads: the room's thread roots the user may see, latest
        activity first, with their thread summaries; `next_batch` pages on (a token `t{P}`:
        threads whose latest reply is before position P)."""
        limit = min(max(limit, 1), MAX_LIMIT)
        before = parse_pagination_token(from_token) if from_token is not None else None
        async with self._snapshot() as conn:
            access = await self._readable(conn, user_id, room_id)
            ignored = await ignored_users(conn, user_id)
            found = await relation_store.threads(
                conn, room_id, before, limit + 1, user_id if participated else None, user_id
            )
            page, more = found[:limit], len(found) > limit
            roots = await event_store.events_by_ids(conn, [root for root, _ in page])
        # Only roots the user may see (rooms/access.py), as every endpoint serving events.
        shown = [
            event
            for root, _ in page
            if (event := roots.get(root)) is not None and access.sees(event)
        ]
        body: JsonDict = {
            "chunk": await self.renderer.serve(_shown(shown, access, ignored), (user_id, device_id))
        }
        if more and page:
            body["next_batch"] = pagination_token(page[-1][1])
        return body
