"""The full-text search index: one row per searchable room event, gone once redacted.

Searchable, as the spec's `keys` name them: `content.body` of messages,
`content.name` of m.room.name and `content.topic` of m.room.topic. PostgreSQL
derives the words (a generated tsvector column) from the value stored here.
"""

from __future__ import annotations

from homeserver.events import types
from homeserver.events.model import Event
from homeserver.projections.changes import EVENT_SEARCH, Change, Delete, Upsert

BODY = "content.body"
NAME = "content.name"
TOPIC = "content.topic"
KEYS = (BODY, NAME, TOPIC)

# Message types whose `body` is text a person wrote (the rich message of our own
# included); other events with a `body` (device commands, stickers) are not prose.
_BODY_TYPES = frozenset({types.MESSAGE, "com.linkchat.message"})
_STATE_KEYS = {types.NAME: ("name", NAME), types.TOPIC: ("topic", TOPIC)}


def _searchable(event: Event) -> tuple[str, str] | None:
    """(key, text) of the event's searchable value, if it has one."""
    if event.state_key is None and event.type in _BODY_TYPES:
        body = event.content.get("body")
        return (BODY, body) if isinstance(body, str) and body.strip() else None
    if event.state_key == "" and event.type in _STATE_KEYS:
        field, key = _STATE_KEYS[event.type]
        value = event.content.get(field)
        return (key, value) if isinstance(value, str) and value.strip() else None
    return None


def changes(event: Event) -> list[Change]:
    if not types.is_room_chain(event.room_id):
        return []
    if event.type == types.REDACTION and event.redacts is not None:
        # The relations projection trusts `redacts` the same way: the room service
        # only lets a redaction name an event of its own room.
        return [Delete(EVENT_SEARCH, {"event_id": event.redacts})]
    found = _searchable(event)
    if found is None:
        return []
    key, value = found
    return [
        Upsert(
            EVENT_SEARCH,
            {
                "event_id": event.event_id,
                "room_id": event.room_id,
                "stream_position": event.stream_position,
                "sender": event.sender,
                "type": event.type,
                "key": key,
                "value": value,
                "contains_url": isinstance(event.content.get("url"), str),
            },
        )
    ]
