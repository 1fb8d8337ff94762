"""What of a room one user may see: the one place that decides it for every endpoint
serving a room's events or state (/event, /context, /messages, /relations, /state,
/members, /aliases, /search, /sync and its stream, and whatever serves events next).

Two questions, asked as Synapse asks them:

- May the user read the room at all (`RoomAccess.require_readable`, 403 otherwise)?
  Yes if they are joined, or have left or been banned (and not forgotten the room
  since), or the room is world_readable now; an invitee reads once joined. Endpoints
  that list a room's events or state ask this first.
- May they see one event (`RoomAccess.sees`)? The spec's history visibility rules at
  that event (rooms/visibility.py), and that its sender was not shadow-banned when they
  sent it (rooms/shadow_bans.py), unless it is the user's own. A single event (/event) is served on
  this alone, so an invitee of an `invited` room sees what was sent since the invite.

A user who forgot the room is a stranger to it until they join again: forgetting
gives up one's history in it.

An erased user (deactivated with `erase`, homeserver/admin/deactivation.py) is
forgotten as Synapse forgets one: their messages are shown only to those who were
joined when they were sent, so people who join later never see them (`sees`); state
stays whole, as for ignored users.

Reports ask it too: an event is reported only by one who `sees` it, a room only by one
who `knows_room` it.

What serves events next (the threads list, /notifications) calls `room_access` and
keeps to `RoomAccess.require_readable` and `RoomAccess.filter` (or `visible_events`,
`visible_event`); it never decides on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from homeserver.errors import forbidden, not_found
from homeserver.events import types
from homeserver.events.model import Event
from homeserver.rooms.shadow_bans import NO_SHADOW_BANS, ShadowBans, load_shadow_bans
from homeserver.rooms.visibility import WORLD_READABLE, HistoryAccess
from homeserver.store import events as event_store
from homeserver.store import history as history_store
from homeserver.store import room_blocks as room_block_store
from homeserver.store import room_directory as directory_store
from homeserver.store import rooms as room_store

# The memberships that let one read a room whatever its setting: members, and those who
# left or were banned (what they could see up to then).
READING_MEMBERSHIPS = ("join", "leave", "ban")
_DEPARTED = ("leave", "ban")


@dataclass(frozen=True)
class RoomAccess:
    user_id: str
    room_id: str
    history: HistoryAccess
    # Erased users: their messages only for those joined when they were sent.
    erased: frozenset[str] = frozenset()
    shadow_bans: ShadowBans = NO_SHADOW_BANS
    # Deleted by an admin with `purge`: nobody reads it any more.
    purged: bool = False

    @property
    def may_read(self) -> bool:
        """Whether the user may read the room's history and state at all."""
        history = self.history
        if self.purged:
            return False
        return history.membership in READING_MEMBERSHIPS or history.setting == WORLD_READABLE

    def require_readable(self) -> None:
        if not self.may_read:
            raise forbidden("You are not a member of this room.")

    @property
    def state_position(self) -> int | None:
        """Where the room's state the user reads is taken: None for the current state,
        else their leave or ban ("if the user has left the room then the state is taken
        from the state of the room when they left")."""
        if self.history.membership in _DEPARTED:
            return self.history.memberships[-1][0]
        return None

    def sees(self, event: Event) -> bool:
        return (
            event.room_id == self.room_id
            and not self.purged
            and self.history.allows(event)
            and not self.erased_for_viewer(event)
            and not self.hides(event)
        )

    def hides(self, event: Event) -> bool:
        """Whether the event is hidden as sent by one shadow-banned then."""
        return self.shadow_bans.hides(event, self.user_id)

    def erased_for_viewer(self, event: Event) -> bool:
        """Whether the event is hidden as an erased user's message the user was not
        joined to see when it was sent."""
        return (
            event.sender in self.erased
            and not event.is_state
            and event.sender != self.user_id
            and self.history.membership_at(event.stream_position) != "join"
        )

    def sees_position(self, position: int) -> bool:
        """Whether the user may see the room's event at `position` (and so its state then)."""
        return self.history.allows_position(position)

    def filter(self, events: Iterable[Event]) -> list[Event]:
        return [event for event in events if self.sees(event)]


async def room_access(conn: asyncpg.Connection, user_id: str, room_id: str) -> RoomAccess:
    """The user's access to the room, from a few rows of the log (one round trip)."""
    return (await room_accesses(conn, user_id, [room_id]))[room_id]


async def room_accesses(
    conn: asyncpg.Connection, user_id: str, room_ids: Sequence[str]
) -> dict[str, RoomAccess]:
    """The user's access to each of the rooms, in three round trips for them all (the
    visibility events and erased users, the shadow-bans, the purged rooms)."""
    accesses: dict[str, RoomAccess] = {}
    found, erased = await history_store.visibility_events(conn, room_ids, user_id)
    shadow_bans = await load_shadow_bans(conn)
    purged = await room_block_store.purged_among(conn, room_ids)
    for room_id, (events, forgotten_at) in found.items():
        history = HistoryAccess.from_events(user_id, events)
        if forgotten_at is not None and history.memberships:
            if forgotten_at > history.memberships[-1][0]:
                history = history.as_stranger()
        accesses[room_id] = RoomAccess(
            user_id, room_id, history, erased, shadow_bans, room_id in purged
        )
    return accesses


async def knows_room(conn: asyncpg.Connection, user_id: str, room_id: str) -> bool:
    """Whether the user may know the room exists (to report it): they have a membership
    in it they have not forgotten (an invite or a knock too), or may read it, or anyone
    may find it (published in the directory) or join it (join rule public). A room
    they may not know answers as one that does not exist, so nothing leaks."""
    access = await room_access(conn, user_id, room_id)
    if access.purged:
        return False
    if access.history.membership is not None or access.may_read:
        return True
    if await directory_store.is_published(conn, room_id):
        return True
    join_rules = await room_store.state_event(conn, room_id, types.JOIN_RULES, "")
    return join_rules is not None and join_rules.content.get("join_rule") == "public"


def sent_by_ignored(event: Event, ignored: frozenset[str]) -> bool:
    """Whether the event is hidden as sent by an ignored user: state never is (as Synapse:
    the room's state stays whole)."""
    return not event.is_state and event.sender in ignored


async def visible_event(
    conn: asyncpg.Connection, access: RoomAccess, event_id: str, ignored: frozenset[str]
) -> Event:
    """The event, if it is the room's and the user may see it; else 404, for an unknown
    event and a hidden one alike, so nothing leaks (the spec's "not found or no
    permission")."""
    event = await event_store.event_by_id(conn, event_id)
    if event is None or not access.sees(event) or sent_by_ignored(event, ignored):
        raise not_found("Event not found.")
    return event


async def visible_events(
    conn: asyncpg.Connection,
    user_id: str,
    events_by_room: Mapping[str, list[Event]],
    joined_at: Mapping[str, int],
) -> dict[str, list[Event]]:
    """Per room, the events among its `events_by_room` the user may see (one round trip
    for them all). `joined_at` holds where the user joined the rooms they are in now: from
    there on they are a member (rule 2), so only what came before needs the rooms'
    history, and a room whose events all follow the join needs no reading at all."""
    earlier = {
        room_id
        for room_id, events in events_by_room.items()
        if events and (room_id not in joined_at or events[0].stream_position < joined_at[room_id])
    }
    accesses = await room_accesses(conn, user_id, sorted(earlier)) if earlier else {}
    return {
        room_id: accesses[room_id].filter(events) if room_id in accesses else list(events)
        for room_id, events in events_by_room.items()
    }
