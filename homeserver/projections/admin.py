"""The audit trail of admin actions and the flagged server admins, from the moderation chain."""

from __future__ import annotations

from homeserver.events import types
from homeserver.events.canonical import encode
from homeserver.events.model import Event
from homeserver.projections.changes import (
    ADMIN_ACTIONS,
    MEDIA,
    QUARANTINED_MEDIA,
    RATELIMIT_OVERRIDES,
    REGISTRATION_TOKEN_USES,
    REGISTRATION_TOKENS,
    SERVER_ADMINS,
    Change,
    Delete,
    Upsert,
)


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
    if event.type == types.RATELIMIT_OVERRIDE and event.state_key is not None:
        key = {"user_id": event.state_key}
        rate, burst = (event.content.get(k) for k in ("messages_per_second", "burst_count"))
        if isinstance(rate, int) and isinstance(burst, int):
            return [
                Upsert(
                    RATELIMIT_OVERRIDES,
                    {
                        **key,
                        "messages_per_second": rate,
                        "burst_count": burst,
                        "stream_position": event.stream_position,
                    },
                )
            ]
        return [Delete(RATELIMIT_OVERRIDES, key)]
    if event.type == types.MEDIA_QUARANTINE and event.state_key is not None:
        media = {"media_id": event.state_key}
        if event.content.get("quarantined") is True:
            return [
                Upsert(
                    QUARANTINED_MEDIA,
                    {
                        **media,
                        "quarantined_by": event.sender,
                        "stream_position": event.stream_position,
                    },
                )
            ]
        return [Delete(QUARANTINED_MEDIA, media)]
    if event.type == types.MEDIA_DELETION and event.state_key is not None:
        # The upload record goes (its bytes are removed from disk after the commit).
        media = {"media_id": event.state_key}
        return [Delete(MEDIA, media), Delete(QUARANTINED_MEDIA, media)]
    if event.type == types.REGISTRATION_TOKEN and event.state_key is not None:
        token = {"token": event.state_key}
        if not event.content:
            return [Delete(REGISTRATION_TOKENS, token)]
        uses, expiry = (event.content.get(k) for k in ("uses_allowed", "expiry_time"))
        return [
            Upsert(
                REGISTRATION_TOKENS,
                {
                    **token,
                    "uses_allowed": uses if isinstance(uses, int) else None,
                    "expiry_time": expiry if isinstance(expiry, int) else None,
                    "stream_position": event.stream_position,
                },
            )
        ]
    if event.type == types.REGISTRATION_TOKEN_USED and event.state_key is None:
        used, session = (event.content.get(k) for k in ("token", "session"))
        if not isinstance(used, str):
            return []
        return [
            Upsert(
                REGISTRATION_TOKEN_USES,
                {
                    "event_id": event.event_id,
                    "token": used,
                    "user_id": event.sender,
                    "session_id": session if isinstance(session, str) else None,
                    "stream_position": event.stream_position,
                },
            )
        ]
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
