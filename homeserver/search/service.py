"""POST /search over room events: full-text search within what each user may see.

Which events a user may find is decided as for /messages (rooms/access.py):
the rooms they are in or have left (not forgotten), and in each the positions
history visibility lets them see (up to their leave, world_readable stretches
excepted). Those positions are a handful of ranges per room, computed from the
few events that decide them, and the database matches words only inside them.
Events from users on the searcher's m.ignored_user_list are left out, and so are those
shadow-banned users sent while banned (rooms/shadow_bans.py), but the searcher's own.

Paging (`next_batch`) is a keyset over the order asked, bounded by the last
position of the first page, so new messages never shift or repeat results.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import asyncpg

from homeserver.account_data.ignore import ignored_users
from homeserver.errors import invalid_param
from homeserver.events.model import Event, JsonDict
from homeserver.projections.search import KEYS
from homeserver.rooms.access import READING_MEMBERSHIPS, room_accesses
from homeserver.rooms.rendering import EventRenderer
from homeserver.rooms.shadow_bans import load_shadow_bans
from homeserver.rooms.visibility import HistoryAccess, membership_of, setting_of
from homeserver.search import query as search_query
from homeserver.search.tokens import decode_token, encode_token, int_field, rank_field
from homeserver.store import accounts as account_store
from homeserver.store import events as event_store
from homeserver.store import rooms as room_store
from homeserver.store import search as search_store
from homeserver.store import sync as sync_store
from homeserver.store.search import ContextWindow, GroupKey, Match, Order, VisibleRange
from homeserver.sync.filters import RoomEventFilter
from homeserver.sync.tokens import pagination_token

DEFAULT_LIMIT = 10
# Each result may carry context and profiles; a page of more is a client bug.
MAX_LIMIT = 100
MAX_CONTEXT = 100
_TOKEN = "next_batch"
_FOREVER = 2**62


@dataclass(frozen=True)
class EventContext:
    before_limit: int = 5
    after_limit: int = 5
    include_profile: bool = False


@dataclass(frozen=True)
class RoomEventsCriteria:
    """The `room_events` category of a search request, already shape-checked."""

    search_term: str
    keys: Sequence[str] = KEYS
    filter: RoomEventFilter = field(default_factory=RoomEventFilter)
    order_by: Order = "rank"
    event_context: EventContext | None = None
    include_state: bool = False
    group_by: Sequence[GroupKey] = ()


@dataclass(frozen=True)
class _Batch:
    """Where a `next_batch` token continues: past (rank, position), up to `upto`, maybe
    within one group (a room or a sender)."""

    order: Order
    upto: int
    position: int
    rank: float | None = None
    group: tuple[GroupKey, str] | None = None

    def encode(self) -> str:
        value: dict[str, Any] = {"o": self.order, "u": self.upto, "p": self.position}
        if self.rank is not None:
            value["r"] = self.rank
        if self.group is not None:
            value["g"] = list(self.group)
        return encode_token(value)

    @classmethod
    def decode(cls, token: str) -> _Batch:
        value = decode_token(token, _TOKEN)
        order = value.get("o")
        if order not in ("rank", "recent"):
            raise invalid_param("Invalid next_batch token.")
        group = value.get("g")
        parsed_group: tuple[GroupKey, str] | None = None
        if group is not None:
            if not isinstance(group, list) or len(group) != 2:
                raise invalid_param("Invalid next_batch token.")
            key = group[0]
            if key not in ("room_id", "sender") or not isinstance(group[1], str):
                raise invalid_param("Invalid next_batch token.")
            parsed_group = ("room_id" if key == "room_id" else "sender", group[1])
        return cls(
            order="rank" if order == "rank" else "recent",
            upto=int_field(value, "u", _TOKEN),
            position=int_field(value, "p", _TOKEN),
            rank=rank_field(value, "r", _TOKEN) if order == "rank" else None,
            group=parsed_group,
        )


@lru_cache(maxsize=65_536)
def _open_ranges(access: HistoryAccess) -> tuple[tuple[int, int], ...]:
    """Every position the access allows, as ranges (the last one open-ended). The
    same deciding events give the same ranges, so they are worked out once: for a
    user in 50 rooms that was 2.5 ms of every search."""
    return tuple(access.visible_ranges(1, _FOREVER))


def _range_of(ranges: Sequence[VisibleRange], position: int) -> VisibleRange:
    for candidate in ranges:
        if candidate.first <= position <= candidate.last:
            return candidate
    return VisibleRange("", position, position)


async def _without_erased(
    conn: asyncpg.Connection, user_id: str, matches: list[Match]
) -> list[Match]:
    """The matches the user may see as rooms/access.py decides for erased users' messages
    (their ranges cannot say): read only when an erased user sent one of them."""
    erased = await account_store.erased_users(conn)
    rooms = sorted({m.event.room_id for m in matches if m.event.sender in erased})
    if not rooms:
        return matches
    accesses = await room_accesses(conn, user_id, rooms)
    return [
        match
        for match in matches
        if match.event.room_id not in accesses
        or not accesses[match.event.room_id].erased_for_viewer(match.event)
    ]


@dataclass(eq=False)
class SearchService:
    pool: asyncpg.Pool
    renderer: EventRenderer

    async def search(
        self,
        user_id: str,
        device_id: str,
        criteria: RoomEventsCriteria,
        next_batch: str | None = None,
    ) -> JsonDict:
        """The `room_events` result: results, count, highlights, and what was asked for."""
        batch = _Batch.decode(next_batch) if next_batch is not None else None
        if batch is not None and batch.order != criteria.order_by:
            raise invalid_param("next_batch was made for another order_by.")
        tsquery = search_query.parse(criteria.search_term)
        empty: JsonDict = {"results": [], "count": 0, "highlights": []}
        if tsquery is None:
            return empty
        chosen = criteria.filter
        limit = min(chosen.limit_or(DEFAULT_LIMIT), MAX_LIMIT)
        group_room = (
            batch.group[1] if batch and batch.group and batch.group[0] == "room_id" else None
        )
        senders = chosen.senders
        if batch is not None and batch.group is not None and batch.group[0] == "sender":
            wanted_sender = batch.group[1]
            senders = [wanted_sender] if senders is None or wanted_sender in senders else []
        async with self.pool.acquire() as conn:
            upto = batch.upto if batch is not None else await event_store.last_position(conn)
            memberships = {
                m.room_id: m
                for m in await sync_store.memberships(conn, user_id)
                if m.membership in READING_MEMBERSHIPS
                and chosen.allows_room(m.room_id)
                and (group_room is None or m.room_id == group_room)
            }
            ranges = await self._visible_ranges(conn, user_id, list(memberships), upto)
            ignored = await ignored_users(conn, user_id)
            matches, count = await search_store.search(
                conn,
                search_store.SearchQuery(
                    tsquery=tsquery,
                    ranges=[r for room_ranges in ranges.values() for r in room_ranges],
                    keys=list(dict.fromkeys(criteria.keys)),
                    order=criteria.order_by,
                    # One more than asked: it tells whether there is a next batch.
                    limit=limit + 1,
                    types=chosen.types,
                    not_types=chosen.not_types or (),
                    senders=senders,
                    not_senders=[*(chosen.not_senders or ()), *sorted(ignored)],
                    contains_url=chosen.contains_url,
                    after=(batch.rank, batch.position) if batch is not None else None,
                    group_by=criteria.group_by,
                    viewer=user_id,
                ),
            )
            more = len(matches) > limit
            matches = matches[:limit]
            shown = await _without_erased(conn, user_id, matches)
            shadow_bans = await load_shadow_bans(conn)
            contexts = (
                await self._contexts(
                    conn,
                    shown,
                    ranges,
                    criteria.event_context,
                    lambda event: shadow_bans.hides(event, user_id),
                )
                if criteria.event_context is not None
                else []
            )
            state = await self._states(conn, shown, memberships) if criteria.include_state else {}
        return await self._render(
            user_id,
            device_id,
            criteria,
            shown,
            count,
            contexts,
            state,
            next_batch=(
                _Batch(
                    criteria.order_by,
                    upto,
                    matches[-1].event.stream_position,
                    matches[-1].rank if criteria.order_by == "rank" else None,
                    batch.group if batch is not None else None,
                )
                if more and matches
                else None
            ),
            upto=upto,
        )

    async def _visible_ranges(
        self, conn: asyncpg.Connection, user_id: str, room_ids: list[str], upto: int
    ) -> dict[str, list[VisibleRange]]:
        memberships: dict[str, list[tuple[int, str]]] = defaultdict(list)
        settings: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for event in await search_store.deciding_events(conn, room_ids, user_id):
            if event.is_membership:
                value = membership_of(event.content)
                memberships[event.room_id].append((event.stream_position, value))
            else:
                settings[event.room_id].append((event.stream_position, setting_of(event.content)))
        ranges: dict[str, list[VisibleRange]] = {}
        for room_id in room_ids:
            access = HistoryAccess(tuple(memberships[room_id]), tuple(settings[room_id]))
            found = [
                VisibleRange(room_id, first, min(last, upto))
                for first, last in _open_ranges(access)
                if first <= upto
            ]
            if found:
                ranges[room_id] = found
        return ranges

    async def _contexts(
        self,
        conn: asyncpg.Connection,
        matches: list[Match],
        ranges: dict[str, list[VisibleRange]],
        asked: EventContext,
        hidden: Callable[[Event], bool],
    ) -> list[tuple[list[Event], list[Event], dict[str, Event]]]:
        """For each match: the visible events before (nearest first) and after it, and
        when asked the member events of their senders as of the last of them."""
        windows = []
        for match in matches:
            event = match.event
            around = _range_of(ranges.get(event.room_id, []), event.stream_position)
            windows.append(
                ContextWindow(event.room_id, event.stream_position, around.first, around.last)
            )
        found = await search_store.context_events(
            conn,
            windows,
            min(max(asked.before_limit, 0), MAX_CONTEXT),
            min(max(asked.after_limit, 0), MAX_CONTEXT),
        )
        found = [
            ([e for e in before if not hidden(e)], [e for e in after if not hidden(e)])
            for before, after in found
        ]
        profiles: list[dict[str, Event]] = [{} for _ in matches]
        if asked.include_profile:
            wanted: list[tuple[int, tuple[str, str, int]]] = []
            for index, (match, (before, after)) in enumerate(zip(matches, found, strict=True)):
                last = after[-1] if after else match.event
                senders = dict.fromkeys(e.sender for e in [*reversed(before), match.event, *after])
                wanted += [
                    (index, (last.room_id, sender, last.stream_position)) for sender in senders
                ]
            members = await search_store.member_events_at(conn, [w for _, w in wanted])
            for (index, (_, sender, _)), member in zip(wanted, members, strict=True):
                if member is not None:
                    profiles[index][sender] = member
        return [(b, a, p) for (b, a), p in zip(found, profiles, strict=True)]

    async def _states(
        self,
        conn: asyncpg.Connection,
        matches: list[Match],
        memberships: dict[str, sync_store.RoomMembership],
    ) -> dict[str, list[Event]]:
        """Each result room's state: current while joined, else as of the user's leave."""
        states: dict[str, list[Event]] = {}
        for room_id in dict.fromkeys(m.event.room_id for m in matches):
            membership = memberships[room_id]
            if membership.membership == "join":
                states[room_id] = await room_store.state_events(conn, room_id)
            else:
                states[room_id] = await room_store.state_events_at(
                    conn, room_id, membership.stream_position
                )
        return states

    async def _render(
        self,
        user_id: str,
        device_id: str,
        criteria: RoomEventsCriteria,
        matches: list[Match],
        count: int,
        contexts: list[tuple[list[Event], list[Event], dict[str, Event]]],
        state: dict[str, list[Event]],
        *,
        next_batch: _Batch | None,
        upto: int,
    ) -> JsonDict:
        everything: dict[str, Event] = {m.event.event_id: m.event for m in matches}
        for before, after, _ in contexts:
            everything.update((e.event_id, e) for e in [*before, *after])
        for events in state.values():
            everything.update((e.event_id, e) for e in events)
        served_list = await self.renderer.serve(list(everything.values()), (user_id, device_id))
        served = dict(zip(everything, served_list, strict=True))
        results: list[JsonDict] = []
        highlights: set[str] = set()
        for index, match in enumerate(matches):
            event = match.event
            result: JsonDict = {"rank": match.rank, "result": served[event.event_id]}
            if criteria.event_context is not None:
                before, after, profiles = contexts[index]
                first = before[-1].stream_position if before else event.stream_position
                last = after[-1].stream_position if after else event.stream_position
                context: JsonDict = {
                    "events_before": [served[e.event_id] for e in before],
                    "events_after": [served[e.event_id] for e in after],
                    "start": pagination_token(first - 1),
                    "end": pagination_token(last),
                }
                if criteria.event_context.include_profile:
                    context["profile_info"] = {
                        sender: _profile(member) for sender, member in profiles.items()
                    }
                result["context"] = context
            results.append(result)
            highlights.update(search_store.highlighted_words(match.headline))
        body: JsonDict = {
            "results": results,
            "count": count,
            "highlights": sorted(highlights),
        }
        if next_batch is not None:
            body["next_batch"] = next_batch.encode()
        if criteria.group_by:
            body["groups"] = _groups(criteria, matches, upto)
        if criteria.include_state:
            body["state"] = {
                room_id: [served[e.event_id] for e in events] for room_id, events in state.items()
            }
        return body


def _profile(member: Event) -> JsonDict:
    profile: JsonDict = {}
    for key in ("displayname", "avatar_url"):
        value = member.content.get(key)
        if isinstance(value, str):
            profile[key] = value
    return profile


def _groups(criteria: RoomEventsCriteria, matches: list[Match], upto: int) -> JsonDict:
    """Results partitioned by room or sender; `order` numbers the groups as their first
    result comes (1 first), and `next_batch` continues within the one group."""
    groups: JsonDict = {}
    for key in criteria.group_by:
        partition: dict[str, JsonDict] = {}
        last_of: dict[str, Match] = {}
        for match in matches:
            value = match.event.room_id if key == "room_id" else match.event.sender
            group = partition.setdefault(value, {"results": [], "order": len(partition) + 1})
            group["results"].append(match.event.event_id)
            last_of[value] = match
        for value, match in last_of.items():
            if match.more_in_group.get(key):
                partition[value]["next_batch"] = _Batch(
                    criteria.order_by,
                    upto,
                    match.event.stream_position,
                    match.rank if criteria.order_by == "rank" else None,
                    (key, value),
                ).encode()
        groups[key] = partition
    return groups
