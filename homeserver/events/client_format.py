"""The form in which events are served to clients (the spec's ClientEvent)."""

from __future__ import annotations

import time
from typing import Any

from homeserver.events.model import Event, JsonDict
from homeserver.events.redaction import redact_content


def client_event(
    event: Event,
    *,
    redacted_by: Event | None = None,
    transaction_id: str | None = None,
    now_ms: int | None = None,
    include_room_id: bool = True,
    relations: JsonDict | None = None,
) -> JsonDict:
    """Serve `event`; a redacted event shows its redacted content and `redacted_because`;
    `relations` are its bundled aggregations (unsigned.m.relations)."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    content: dict[str, Any] = dict(event.content)
    unsigned: JsonDict = {"age": max(0, now - event.origin_server_ts)}
    if redacted_by is not None:
        content = redact_content(event.type, content)
        unsigned["redacted_because"] = client_event(redacted_by, now_ms=now)
    if transaction_id is not None:
        unsigned["transaction_id"] = transaction_id
    if relations:
        unsigned["m.relations"] = relations
    served: JsonDict = {
        "content": content,
        "event_id": event.event_id,
        "origin_server_ts": event.origin_server_ts,
        "sender": event.sender,
        "type": event.type,
        "unsigned": unsigned,
    }
    if include_room_id:
        served["room_id"] = event.room_id
    if event.state_key is not None:
        served["state_key"] = event.state_key
    if event.redacts is not None:
        # Clients written for room versions before 11 read `redacts` at the top level.
        served["redacts"] = event.redacts
    return served
