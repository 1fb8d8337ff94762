"""Which account holds which email address, by the address's keyed hash (never the address)."""

from __future__ import annotations

from homeserver.events import types
from homeserver.events.model import Event
from homeserver.projections.changes import USER_THREEPIDS, Change, Delete, Upsert


def changes(event: Event) -> list[Change]:
    if event.type != types.ACCOUNT_THREEPID or not types.is_account_chain(event.room_id):
        return []
    medium = event.content.get("medium")
    if event.state_key is None:
        return []
    key = {"user_id": event.room_id, "address_hash": event.state_key}
    if not isinstance(medium, str):
        return [Delete(USER_THREEPIDS, key)]  # a removal ({})
    return [
        Upsert(
            USER_THREEPIDS,
            {
                **key,
                "medium": medium,
                "validated_ts": _ts(event.content.get("validated_ts"), event),
                "added_ts": _ts(event.content.get("added_ts"), event),
                "stream_position": event.stream_position,
            },
        )
    ]


def _ts(value: object, event: Event) -> int:
    return (
        value if isinstance(value, int) and not isinstance(value, bool) else event.origin_server_ts
    )
