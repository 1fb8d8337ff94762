"""Friend relations and blocks, from the account chains (homeserver/friends).

Each side of a relation holds it in its own chain as `com.linkchat.friend`
state keyed by the other user, so one row per (user, other) follows from one
event; a block is `com.linkchat.friend.block` state in the blocker's chain.
"""

from __future__ import annotations

from homeserver.events import types
from homeserver.events.model import Event
from homeserver.projections.changes import FRIEND_RELATIONS, USER_BLOCKS, Change, Delete, Upsert

REQUESTS = ("outgoing", "incoming")
FRIENDS = "friends"


def changes(event: Event) -> list[Change]:
    if event.state_key is None or not types.is_account_chain(event.room_id):
        return []
    if event.type == types.FRIEND:
        return [_relation_change(event, event.state_key)]
    if (block := block_of(event)) is not None:
        blocker, blocked, in_force = block
        key = {"user_id": blocker, "blocked_id": blocked}
        if not in_force:
            return [Delete(USER_BLOCKS, key)]
        return [
            Upsert(
                USER_BLOCKS,
                {
                    **key,
                    "ts": _int(event.content.get("ts"), event),
                    "stream_position": event.stream_position,
                },
            )
        ]
    return []


def block_of(event: Event) -> tuple[str, str, bool] | None:
    """(blocker, blocked, whether the block is in force) of a block fact; None for other events."""
    if (
        event.type != types.FRIEND_BLOCK
        or event.state_key is None
        or not types.is_account_chain(event.room_id)
    ):
        return None
    return event.room_id, event.state_key, event.content.get("blocked") is True


def _relation_change(event: Event, other: str) -> Change:
    key = {"user_id": event.room_id, "other_id": other}
    content = event.content
    relation = content.get("relation")
    if relation in REQUESTS:
        message = content.get("message")
        return Upsert(
            FRIEND_RELATIONS,
            {
                **key,
                "relation": relation,
                "message": message if isinstance(message, str) else None,
                "ts": _int(content.get("ts"), event),
                "room_id": None,
                "stream_position": event.stream_position,
            },
        )
    room_id = content.get("room_id")
    if relation == FRIENDS and isinstance(room_id, str):
        return Upsert(
            FRIEND_RELATIONS,
            {
                **key,
                "relation": FRIENDS,
                "message": None,
                "ts": _int(content.get("since"), event),
                "room_id": room_id,
                "stream_position": event.stream_position,
            },
        )
    # {"ended": "declined" | "cancelled" | "removed"}: no relation any more.
    return Delete(FRIEND_RELATIONS, key)


def _int(value: object, event: Event) -> int:
    """A timestamp from the content, else the event's own (the rules only log ints)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return event.origin_server_ts
