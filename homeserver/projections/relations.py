"""Redactions and m.relates_to relations (edits, reactions, threads, replies)."""

from __future__ import annotations

from homeserver.events import types
from homeserver.events.model import Event
from homeserver.projections.changes import EVENT_RELATIONS, REDACTIONS, Change, InsertIfAbsent


def changes(event: Event) -> list[Change]:
    if not types.is_room_chain(event.room_id):
        return []
    result: list[Change] = []
    if event.redacts is not None:
        result.append(
            InsertIfAbsent(REDACTIONS, {"redacts": event.redacts, "redaction_id": event.event_id})
        )
    relates_to = event.content.get("m.relates_to")
    if isinstance(relates_to, dict):
        target = relates_to.get("event_id")
        rel_type = relates_to.get("rel_type")
        if isinstance(target, str) and isinstance(rel_type, str):
            key = relates_to.get("key")
            result.append(
                InsertIfAbsent(
                    EVENT_RELATIONS,
                    {
                        "event_id": event.event_id,
                        "room_id": event.room_id,
                        "relates_to": target,
                        "rel_type": rel_type,
                        "type": event.type,
                        "sender": event.sender,
                        "aggregation_key": key if isinstance(key, str) else None,
                    },
                )
            )
    return result
