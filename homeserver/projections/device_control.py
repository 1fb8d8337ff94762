"""Devices and their commands, from the owners' account chains and the device rooms.

- `com.linkchat.account.owned_device` (owner's chain, state key: the device)
  -> linkchat_devices; `{}` retires the device and removes its row.
- `com.linkchat.device.command` -> device_commands (as sent) and
  device_command_status (pending).
- `com.linkchat.device.result` and `com.linkchat.device.command.expired`
  -> device_command_results (one row each) and the command's latest status.

Pure: a command's expiry is an event in the log (appended by the server when
the ttl passed), never this reducer reading a clock, so a replay agrees with
the live server. In device rooms the rules (device_control/rules.py)
accepted every event seen here; elsewhere these types are carried untouched,
so a status row is keyed by the room of the event that set it, and readers
join it with the command of that same room only. Logged events are forever:
their content is read leniently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from homeserver.events import types
from homeserver.events.canonical import encode
from homeserver.events.model import Event
from homeserver.projections.changes import (
    DEVICE_COMMAND_RESULTS,
    DEVICE_COMMAND_STATUS,
    DEVICE_COMMANDS,
    LINKCHAT_DEVICES,
    Change,
    Delete,
    InsertIfAbsent,
    Upsert,
)

PENDING = "pending"
EXPIRED = "expired"
# A command is finished once a result says so, or once it expired; nothing may follow.
TERMINAL = frozenset({"succeeded", "failed", "rejected", EXPIRED})
OPEN = frozenset({PENDING, "accepted", "running"})


@dataclass(frozen=True, slots=True)
class CommandSent:
    """What a command event says about its command."""

    action: str
    args: Any
    ttl_ms: int
    expires_ts: int


@dataclass(frozen=True, slots=True)
class StatusSet:
    """What a result or an expiry says: the command it answers and its new status."""

    command_id: str
    status: str


def command_of(event: Event) -> CommandSent | None:
    if event.type != types.DEVICE_COMMAND or event.state_key is not None:
        return None
    action, ttl_ms = event.content.get("action"), event.content.get("ttl_ms")
    if not isinstance(action, str) or not isinstance(ttl_ms, int) or isinstance(ttl_ms, bool):
        return None
    args = event.content.get("args", {})
    return CommandSent(action, args, ttl_ms, event.origin_server_ts + ttl_ms)


def answered_command(content: Mapping[str, Any]) -> str | None:
    """The command a result or an expiry names in its `m.relates_to`."""
    relates_to = content.get("m.relates_to")
    if not isinstance(relates_to, Mapping):
        return None
    if relates_to.get("rel_type") != types.DEVICE_RESULT_RELATION:
        return None
    target = relates_to.get("event_id")
    return target if isinstance(target, str) else None


def status_of(event: Event) -> StatusSet | None:
    if event.state_key is not None:
        return None
    if event.type == types.DEVICE_RESULT:
        status = event.content.get("status")
    elif event.type == types.DEVICE_COMMAND_EXPIRED:
        status = EXPIRED
    else:
        return None
    command_id = answered_command(event.content)
    if command_id is None or not isinstance(status, str):
        return None
    return StatusSet(command_id, status)


def changes(event: Event) -> list[Change]:
    if event.type == types.OWNED_DEVICE and types.is_account_chain(event.room_id):
        return _owned_device_changes(event)
    if not types.is_room_chain(event.room_id):
        return []
    if (sent := command_of(event)) is not None:
        return [
            InsertIfAbsent(
                DEVICE_COMMANDS,
                {
                    "command_id": event.event_id,
                    "room_id": event.room_id,
                    "sender": event.sender,
                    "action": sent.action,
                    "args": encode(sent.args).decode(),
                    "ttl_ms": sent.ttl_ms,
                    "sent_ts": event.origin_server_ts,
                    "expires_ts": sent.expires_ts,
                    "stream_position": event.stream_position,
                },
            ),
            _status_row(event, event.event_id, PENDING),
        ]
    if (answer := status_of(event)) is not None:
        output = event.content.get("output")
        error = event.content.get("error")
        return [
            InsertIfAbsent(
                DEVICE_COMMAND_RESULTS,
                {
                    "event_id": event.event_id,
                    "command_id": answer.command_id,
                    "room_id": event.room_id,
                    "sender": event.sender,
                    "status": answer.status,
                    "output": encode(output).decode() if "output" in event.content else None,
                    "error": error if isinstance(error, str) else None,
                    "ts": event.origin_server_ts,
                    "stream_position": event.stream_position,
                },
            ),
            _status_row(event, answer.command_id, answer.status),
        ]
    return []


def _status_row(event: Event, command_id: str, status: str) -> Change:
    return Upsert(
        DEVICE_COMMAND_STATUS,
        {
            "command_id": command_id,
            "room_id": event.room_id,
            "status": status,
            "event_id": event.event_id,
            "updated_ts": event.origin_server_ts,
            "stream_position": event.stream_position,
        },
    )


def _owned_device_changes(event: Event) -> list[Change]:
    device_user_id = event.state_key
    if device_user_id is None:
        return []
    room_id, name = event.content.get("room_id"), event.content.get("display_name")
    if not isinstance(room_id, str):
        return [Delete(LINKCHAT_DEVICES, {"device_user_id": device_user_id})]
    created_ts = event.content.get("created_ts")
    return [
        Upsert(
            LINKCHAT_DEVICES,
            {
                "device_user_id": device_user_id,
                "owner_id": event.room_id,
                "room_id": room_id,
                "display_name": name if isinstance(name, str) else "",
                "created_ts": created_ts if isinstance(created_ts, int) else event.origin_server_ts,
                "stream_position": event.stream_position,
            },
        )
    ]
