"""One /sync response while its sections (sync/sections/) write it, then served and
finished into a `SyncResult`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping

from homeserver.events.model import Event, JsonDict
from homeserver.rooms.rendering import now_ms, render
from homeserver.sync.response import SyncResult, empty_room
from homeserver.sync.tokens import SyncToken
from homeserver.sync.window import Memberships, SyncRequest, WindowSource

NO_MEMBERSHIPS = Memberships({})


class SyncAssembly:
    """The response of one sync while its sections write it: a long-poll builds one
    each time it is woken, so it is a plain class with slots (cheap to make)."""

    __slots__ = (
        "_bundled",
        "_unserved",
        "account_data",
        "changed",
        "extra",
        "generation",
        "invite",
        "join",
        "joined",
        "leave",
        "memberships",
        "presence",
        "presence_position",
        "request",
        "source",
        "summary_changed",
        "to_device",
        "to_device_position",
        "typing_serial",
        "upper",
        "whole",
    )

    def __init__(
        self, request: SyncRequest, source: WindowSource, generation: int, joined: Mapping[str, int]
    ) -> None:
        self.request = request
        self.source = source
        self.upper = source.upper
        # Every joined room is shown, changed or not (an initial or full-state sync).
        self.whole = request.since is None or request.full_state
        # The user's changes seen so far (Notifier.generation), read before the window was.
        self.generation = generation
        # Every room the user is joined to (the notifier's view, whatever the filter says).
        self.joined = joined
        self.memberships = NO_MEMBERSHIPS  # the rooms the filter allows (sections/rooms.py)
        self.join: dict[str, JsonDict] = {}
        self.invite: dict[str, JsonDict] = {}
        self.leave: dict[str, JsonDict] = {}
        self.account_data: list[JsonDict] = []
        self.presence: list[JsonDict] = []
        self.to_device: list[JsonDict] = []
        # Top-level parts of the body a section adds beyond those above, and whether a
        # section wrote something new outside them.
        self.extra: JsonDict = {}
        self.changed = False
        # Joined rooms whose members, name or alias changed in the window (or that are
        # new to the user): their summary is sent.
        self.summary_changed: set[str] = set()
        # The token's other streams, as the sections read them.
        since = request.since
        self.typing_serial = 0
        self.to_device_position = since.to_device if since is not None else 0
        self.presence_position = since.presence if since is not None else 0
        self._unserved: list[tuple[JsonDict, str, list[Event]]] = []
        self._bundled: set[str] = set()

    def joined_room(self, room_id: str) -> JsonDict:
        """The joined room's section, made empty if it has none yet."""
        room = self.join.get(room_id)
        if room is None:
            room = self.join[room_id] = empty_room(self.upper)
        return room

    def serve_later(
        self, parent: JsonDict, key: str, events: list[Event], *, bundled: bool = False
    ) -> None:
        """`parent[key]` is to be `events` served: all of a sync's events are served
        together, once the sections are written (`serve`). `bundled`: with their bundled
        aggregations (the timeline of a room new to the user or cut short, as Synapse:
        a client shown a timeline whole has every edit and reply in it already)."""
        parent[key] = events
        if events:
            self._unserved.append((parent, key, events))
            if bundled:
                self._bundled.update(event.event_id for event in events)

    def add_state(self, room_id: str, events: list[Event]) -> None:
        """More events for a joined room's `state`, to be served with the rest."""
        state = self.join[room_id]["state"]
        if state["events"]:
            state["events"].extend(events)  # served already counts this list
        else:
            self.serve_later(state, "events", events)

    def unserved_events(self) -> Iterator[Event]:
        """The events the sections have written so far, to be served."""
        for _, _, events in self._unserved:
            yield from events

    async def serve(self) -> None:
        events = [event for _, _, unserved in self._unserved for event in unserved]
        if not events:
            return
        options = self.request.options
        facts = await self.source.facts(events, self._bundled)
        served = iter(
            render(
                events,
                facts,
                now=now_ms(),
                include_room_id=options.include_room_id,
                shape=options.shape,
                federation=options.federation_format,
            )
        )
        for parent, key, unserved in self._unserved:
            parent[key] = [next(served) for _ in unserved]
        self._unserved.clear()

    def result(self) -> SyncResult:
        token = SyncToken(
            self.upper, self.typing_serial, self.to_device_position, self.presence_position
        )
        body: JsonDict = {
            "next_batch": str(token),
            "rooms": {"join": self.join, "invite": self.invite, "leave": self.leave},
            "account_data": {"events": self.account_data},
            "presence": {"events": self.presence},
            "to_device": {"events": self.to_device},
            "device_one_time_keys_count": {},
        }
        if self.extra:
            body.update(self.extra)
        has_changes = self.changed or bool(
            self.join
            or self.invite
            or self.leave
            or self.account_data
            or self.to_device
            or self.presence
        )
        return SyncResult(token, body, has_changes, self.memberships.joined.keys())


# A section of the response: writes its part of the assembly, read through its source.
Section = Callable[[SyncAssembly], Awaitable[None]]
