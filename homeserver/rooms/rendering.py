"""Events in their client form (the spec's ClientEvent), for every endpoint that serves
them: /sync (built from the in-memory tail or from the database), /messages, /context,
/relations, /search, /event, /state and /members.

One rule, here only: a redacted event shows its redacted content and `redacted_because`;
the viewer's own device sees the transaction ID it sent the event with; an event carries
its bundled aggregations (the latest edit, its thread: rooms/aggregations.py); an event
already encoded for everyone it goes to (`EncodedEvent`, held by the in-memory tail)
is spliced in as it is whenever none of those, nor a filter's `event_fields`, changes
it. What decides the first three comes with the events (`EventFacts`): read from the
database here (`EventRenderer.facts`), or known already by whoever holds the events in
memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import asyncpg

from homeserver.events.client_format import ClientJson, EncodedEvent, client_event
from homeserver.events.model import Event, JsonDict
from homeserver.events.redaction import redact
from homeserver.events.room_versions import LEGACY, RoomVersion, room_version
from homeserver.rooms.aggregations import bundled_aggregations
from homeserver.store import events as event_store
from homeserver.store import rooms as room_store

# Whom events are served to: a user ID and the device ID of their access token.
Viewer = tuple[str, str]
# A filter's event_fields: what of each served event to keep.
Shape = Callable[[JsonDict], JsonDict]


class EventFacts(Protocol):
    """What, beyond an event itself, decides how it is served to one viewer."""

    def redaction_of(self, event: Event) -> Event | None: ...

    def room_version(self, event: Event) -> RoomVersion:
        """The version of the event's room, whose redaction algorithm a redacted event
        is served by (asked only of redacted events)."""
        ...

    def transaction_id(self, event: Event) -> str | None: ...

    def relations(self, event: Event) -> JsonDict | None: ...

    def encoded(self, event: Event) -> EncodedEvent | None: ...


@dataclass(frozen=True, slots=True)
class StoredFacts:
    """The facts as the database has them (`EventRenderer.facts`); nothing pre-encoded."""

    redactions: Mapping[str, Event]
    transaction_ids: Mapping[str, str]
    bundles: Mapping[str, JsonDict]
    versions: Mapping[str, RoomVersion] = field(default_factory=dict)

    def redaction_of(self, event: Event) -> Event | None:
        return self.redactions.get(event.event_id)

    def room_version(self, event: Event) -> RoomVersion:
        return self.versions.get(event.room_id, LEGACY)

    def transaction_id(self, event: Event) -> str | None:
        return self.transaction_ids.get(event.event_id)

    def relations(self, event: Event) -> JsonDict | None:
        return self.bundles.get(event.event_id)

    def encoded(self, event: Event) -> EncodedEvent | None:
        return None


_NO_FACTS = StoredFacts({}, {}, {})


def now_ms() -> int:
    return int(time.time() * 1000)


def client_form(event: Event, facts: EventFacts, now: int, include_room_id: bool) -> JsonDict:
    """The event as a client is served it, as Python values."""
    redacted_by = facts.redaction_of(event)
    return client_event(
        event,
        redacted_by=redacted_by,
        version=facts.room_version(event) if redacted_by is not None else LEGACY,
        transaction_id=facts.transaction_id(event),
        now_ms=now,
        include_room_id=include_room_id,
        relations=facts.relations(event),
    )


def federation_form(event: Event, facts: EventFacts, now: int) -> JsonDict:
    """The event as a filter's `event_format: federation` asks: the event as the log
    holds it (its hashes, signatures, auth and prev events, depth), with its event ID
    and the same `unsigned` as the client form (as Synapse's serialize_event)."""
    redacted_by = facts.redaction_of(event)
    served = dict(
        redact(event.pdu, facts.room_version(event)) if redacted_by is not None else event.pdu
    )
    served["event_id"] = event.event_id
    unsigned = client_form(event, facts, now, include_room_id=True)["unsigned"]
    if redacted_by is not None:
        unsigned["redacted_because"] = federation_form(redacted_by, _NO_FACTS, now)
    served["unsigned"] = unsigned
    return served


def render(
    events: Sequence[Event],
    facts: EventFacts,
    *,
    now: int,
    include_room_id: bool = True,
    shape: Shape | None = None,
    federation: bool = False,
) -> list[ClientJson]:
    """The events as a client is served them (as the log holds them, when `federation`):
    pre-encoded where they can be."""
    served: list[ClientJson] = []
    # Encoded forms are client forms without a room ID (sync's form), unshaped.
    plain = shape is None and not include_room_id and not federation
    encoded_form = facts.encoded if plain else None
    for event in events:
        if (
            encoded_form is not None
            and (encoded := encoded_form(event)) is not None
            and facts.redaction_of(event) is None
            and not facts.relations(event)
        ):
            served.append(encoded.serve(now, facts.transaction_id(event)))
            continue
        if federation:
            form = federation_form(event, facts, now)
        else:
            form = client_form(event, facts, now, include_room_id)
        served.append(shape(form) if shape is not None else form)
    return served


class EventRenderer:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        # A room's version never changes: read once per room, when an event of it is
        # first served redacted, and kept for this process's life.
        self._versions: dict[str, RoomVersion] = {}

    async def room_versions(
        self, conn: asyncpg.Connection, room_ids: Iterable[str]
    ) -> dict[str, RoomVersion]:
        """The versions of these rooms (LEGACY for a chain that is no room)."""
        wanted = set(room_ids)
        missing = [room_id for room_id in wanted if room_id not in self._versions]
        if missing:
            found = await room_store.room_versions(conn, missing)
            for room_id in missing:
                self._versions[room_id] = room_version(found.get(room_id)) or LEGACY
        return {room_id: self._versions[room_id] for room_id in wanted}

    async def facts(
        self,
        events: Sequence[Event],
        viewer: Viewer | None,
        *,
        include_room_id: bool = True,
        bundled: Collection[str] | None = None,
    ) -> StoredFacts:
        """The redactions of `events`, the transaction IDs the viewer's device gave them
        and their bundled aggregations (of those `bundled` names, if given), in one
        connection."""
        if not events:
            return StoredFacts({}, {}, {})
        ids = [event.event_id for event in events]
        chosen = events if bundled is None else [e for e in events if e.event_id in bundled]
        async with self._pool.acquire() as conn:
            redactions = await event_store.redactions_of(conn, ids)
            txn_ids = await room_store.transaction_ids(conn, ids, *viewer) if viewer else {}
            bundles = await bundled_aggregations(
                conn,
                chosen,
                viewer[0] if viewer else None,
                redactions,
                include_room_id=include_room_id,
            )
            versions = (
                await self.room_versions(
                    conn, {e.room_id for e in events if e.event_id in redactions}
                )
                if redactions
                else {}
            )
        return StoredFacts(redactions, txn_ids, bundles, versions)

    async def bundles(
        self, events: Sequence[Event], viewer: Viewer, *, include_room_id: bool = True
    ) -> dict[str, JsonDict]:
        """The bundled aggregations alone (of events whose other facts are known)."""
        if not events:
            return {}
        async with self._pool.acquire() as conn:
            redactions = await event_store.redactions_of(conn, [e.event_id for e in events])
            return await bundled_aggregations(
                conn, events, viewer[0], redactions, include_room_id=include_room_id
            )

    async def serve(
        self, events: Sequence[Event], viewer: Viewer | None = None, *, include_room_id: bool = True
    ) -> list[JsonDict]:
        """The events in client form, as Python values (for bodies that are not /sync's)."""
        facts = await self.facts(events, viewer, include_room_id=include_room_id)
        now = now_ms()
        return [client_form(event, facts, now, include_room_id) for event in events]
