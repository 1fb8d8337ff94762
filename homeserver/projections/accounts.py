"""Users, their devices and forgotten rooms, from the account chains; aliases."""

from __future__ import annotations

from homeserver.events import types
from homeserver.events.canonical import encode
from homeserver.events.model import Event
from homeserver.projections.changes import (
    ACCOUNT_DATA,
    DEVICES,
    FORGOTTEN_ROOMS,
    RECEIPTS,
    ROOM_ALIASES,
    USER_FILTERS,
    USERS,
    Change,
    Delete,
    Upsert,
)


def changes(event: Event) -> list[Change]:
    if event.state_key is None:
        return []
    if types.is_account_chain(event.room_id):
        return _account_changes(event)
    if types.is_alias_chain(event.room_id) and event.type == types.ALIAS:
        room_id = event.content.get("room_id")
        if isinstance(room_id, str):
            # An alias moved by a room upgrade keeps the creator it had (`creator`).
            creator = event.content.get("creator")
            row = {
                "alias": event.room_id,
                "room_id": room_id,
                "creator": creator if isinstance(creator, str) else event.sender,
            }
            return [Upsert(ROOM_ALIASES, row)]
        return [Delete(ROOM_ALIASES, {"alias": event.room_id})]
    return []


def _account_changes(event: Event) -> list[Change]:
    user_id = event.room_id
    content = event.content
    if event.type == types.ACCOUNT:
        kind = content.get("kind")
        return [
            Upsert(
                USERS,
                {
                    "user_id": user_id,
                    "created_ts": int(content.get("created_ts", event.origin_server_ts)),
                    "deactivated": content.get("deactivated") is True,
                    "kind": kind if isinstance(kind, str) else "user",
                    "erased": content.get("erased") is True,
                },
            )
        ]
    if event.type == types.ACCOUNT_DEVICE:
        key = {"user_id": user_id, "device_id": event.state_key}
        if not content:
            return [Delete(DEVICES, key)]
        name = content.get("display_name")
        return [
            Upsert(
                DEVICES,
                {
                    **key,
                    "display_name": name if isinstance(name, str) else None,
                    "created_ts": int(content.get("created_ts", event.origin_server_ts)),
                },
            )
        ]
    if event.type == types.RECEIPT:
        return _receipt_changes(event)
    if event.type == types.ACCOUNT_DATA:
        return _account_data_changes(event)
    if event.type == types.FILTER:
        filter_id = event.state_key
        body = content.get("filter")
        if not isinstance(body, dict):
            return []
        return [
            Upsert(
                USER_FILTERS,
                {"user_id": user_id, "filter_id": filter_id, "filter": encode(body).decode()},
            )
        ]
    if event.type == types.ACCOUNT_FORGOTTEN:
        key = {"user_id": user_id, "room_id": event.state_key}
        if content.get("forgotten") is True:
            return [Upsert(FORGOTTEN_ROOMS, {**key, "stream_position": event.stream_position})]
        return [Delete(FORGOTTEN_ROOMS, key)]
    return []


def _receipt_changes(event: Event) -> list[Change]:
    """A receipt: {room_id, receipt_type, thread_id, event_id, ts}, keyed by its state key."""
    content = event.content
    fields = [content.get(k) for k in ("room_id", "receipt_type", "thread_id", "event_id")]
    if not all(isinstance(f, str) for f in fields):
        return []
    room_id, receipt_type, thread_id, event_id = fields
    ts = content.get("ts")
    return [
        Upsert(
            RECEIPTS,
            {
                "room_id": room_id,
                "user_id": event.room_id,
                "receipt_type": receipt_type,
                "thread_id": thread_id,
                "event_id": event_id,
                "ts": ts if isinstance(ts, int) else event.origin_server_ts,
                "stream_position": event.stream_position,
            },
        )
    ]


def _account_data_changes(event: Event) -> list[Change]:
    """Account data: {room_id ('' for global), type, content}, keyed by its state key."""
    room_id, data_type, data = (event.content.get(k) for k in ("room_id", "type", "content"))
    if not isinstance(room_id, str) or not isinstance(data_type, str) or not isinstance(data, dict):
        return []
    return [
        Upsert(
            ACCOUNT_DATA,
            {
                "user_id": event.room_id,
                "room_id": room_id,
                "type": data_type,
                "content": encode(data).decode(),
                "stream_position": event.stream_position,
            },
        )
    ]
