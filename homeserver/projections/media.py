"""Uploaded files, from the com.linkchat.media events in the uploaders' account chains."""

from __future__ import annotations

from homeserver.events import types
from homeserver.events.model import Event
from homeserver.projections.changes import MEDIA, Change, InsertIfAbsent


def changes(event: Event) -> list[Change]:
    if event.type != types.MEDIA or event.state_key is not None:
        return []
    if not types.is_account_chain(event.room_id):
        return []
    content = event.content
    media_id, content_type, sha256 = (
        content.get(k) for k in ("media_id", "content_type", "sha256")
    )
    size, filename, created_ts = (content.get(k) for k in ("size", "filename", "created_ts"))
    if not (isinstance(media_id, str) and isinstance(content_type, str)):
        return []
    if not (isinstance(sha256, str) and isinstance(size, int) and not isinstance(size, bool)):
        return []
    return [
        # A media ID names one file forever: the first record wins.
        InsertIfAbsent(
            MEDIA,
            {
                "media_id": media_id,
                "user_id": event.room_id,
                "content_type": content_type,
                "filename": filename if isinstance(filename, str) else None,
                "size": size,
                "sha256": sha256,
                "created_ts": created_ts
                if isinstance(created_ts, int) and not isinstance(created_ts, bool)
                else event.origin_server_ts,
                "event_id": event.event_id,
                "stream_position": event.stream_position,
            },
        )
    ]
