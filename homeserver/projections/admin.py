"""The audit trail of admin actions and the flagged server admins, from the moderation chain."""

from __future__ import annotations

from homeserver.events import types
from homeserver.events.canonical import encode
from homeserver.events.model import Event
from homeserver.projections.changes import ADMIN_ACTIONS, SERVER_ADMINS, Change, Delete, Upsert


def changes(event: Event) -> list[Change]:
    if not types.is_moderation_chain(event.room_id):
        return []
    if event.type == types.ADMIN_ACTION and event.state_key is None:
        return _action(event)
    if event.type == types.SERVER_ADMIN and event.state_key is not None:
        key = {"user_id": event.state_key}
        if event.content.get("admin") is True:
            return [Upsert(SERVER_ADMINS, {**key, "stream_position": event.stream_position})]
        return [Delete(SERVER_ADMINS, key)]
    return []


def _action(event: Event) -> list[Change]:
    content = event.content
    action, target, reason, details = (
        content.get(key) for key in ("action", "target", "reason", "details")
    )
    if not isinstance(action, str):
        return []
    return [
        Upsert(
            ADMIN_ACTIONS,
            {
                "event_id": event.event_id,
                "stream_position": event.stream_position,
                "ts": event.origin_server_ts,
                "admin_id": event.sender,
                "action": action,
                "target": target if isinstance(target, str) else None,
                "reason": reason if isinstance(reason, str) else None,
                "details": encode(details).decode() if isinstance(details, dict) else None,
            },
        )
    ]
