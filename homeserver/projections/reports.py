"""Reports of events, rooms and users, from the moderation chain (homeserver/moderation).

One row per report, keyed by its ID, the report fact's stream position (what
Synapse's admin API calls a report's `id`); an admin's deletion fact removes it.
Only well-formed facts reach the log (moderation/rules.py), but a reducer reads
what it is given defensively: a replay must never fail on an old shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeserver.events import types
from homeserver.events.model import Event
from homeserver.projections.changes import (
    EVENT_REPORTS,
    ROOM_REPORTS,
    USER_REPORTS,
    Change,
    Delete,
    Table,
    Upsert,
)

TABLE_OF_KIND: dict[str, Table] = {
    "event": EVENT_REPORTS,
    "room": ROOM_REPORTS,
    "user": USER_REPORTS,
}


def changes(event: Event) -> list[Change]:
    if event.state_key is not None or not types.is_moderation_chain(event.room_id):
        return []
    content = event.content
    common = {
        "id": event.stream_position,
        "received_ts": event.origin_server_ts,
        "user_id": event.sender,
        "reason": _text(content, "reason"),
    }
    if event.type == types.REPORT_EVENT:
        room_id, event_id = _text(content, "room_id"), _text(content, "event_id")
        if room_id is None or event_id is None:
            return []
        score = content.get("score")
        if not isinstance(score, int) or isinstance(score, bool):
            score = None
        return [
            Upsert(
                EVENT_REPORTS, {**common, "room_id": room_id, "event_id": event_id, "score": score}
            )
        ]
    if event.type == types.REPORT_ROOM:
        if (room_id := _text(content, "room_id")) is None:
            return []
        return [Upsert(ROOM_REPORTS, {**common, "room_id": room_id})]
    if event.type == types.REPORT_USER:
        if (target := _text(content, "user_id")) is None:
            return []
        return [Upsert(USER_REPORTS, {**common, "target_user_id": target})]
    if event.type == types.REPORT_DELETED:
        report_id, table = content.get("report_id"), TABLE_OF_KIND.get(_text(content, "kind") or "")
        if not isinstance(report_id, int) or isinstance(report_id, bool) or table is None:
            return []
        return [Delete(table, {"id": report_id})]
    return []


def _text(content: Mapping[str, Any], key: str) -> str | None:
    value = content.get(key)
    return value if isinstance(value, str) else None
