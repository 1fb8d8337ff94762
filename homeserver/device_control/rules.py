"""The rules of device rooms, decided under the append lock.

`register` (called in app.py) makes the appender's rules call `authorize`
for every room draft of the types it checks, after the Matrix rules passed:
so the sender is in the room and their power level allows the event type
(the device room's power levels put commands at the command level, results
and capabilities at the device's level). What the Matrix rules cannot say
is checked here, against the room's state and the batch's `CommandFacts`:

- capabilities: only the device sets them; every argument schema is a valid,
  self-contained JSON Schema (draft 2020-12) within the bounds of
  device_control/schemas.py;
- a command: never from the device (nor the system user), only while the
  device is in its room, for an action among its capabilities, with
  arguments its schema accepts (checked in bounded time, before the lock
  when the sender used DeviceEventChecks: CheckedCommand);
- a result: only from the device, for a known command of this room that is
  neither finished nor past its ttl;
- an expiry: only from the system user, for a command past its ttl and not
  finished.

A device room made any other way than by the device service, and encryption
of a device room (the server could no longer check a command), are refused.
Outside device rooms these types are carried untouched, as any custom type:
no rules, and the readers of the commands projection only look at device
rooms.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from homeserver.device_control import schemas
from homeserver.device_control.content import (
    ACTION_NAME,
    CapabilitiesContent,
    CommandContent,
    ExpiredContent,
    ResultContent,
    parse,
)
from homeserver.device_control.facts import CommandFacts, load_facts
from homeserver.errors import MatrixError, bad_json, forbidden, too_large
from homeserver.events import types
from homeserver.events.model import Draft, state_changed
from homeserver.log.rules import ROOM, ChainRules
from homeserver.projections.device_control import EXPIRED, TERMINAL
from homeserver.projections.room_state import RoomState

# Namespaced errcodes (spec/devices.md).
UNKNOWN_COMMAND = "LINKCHAT_UNKNOWN_COMMAND"
COMMAND_EXPIRED = "LINKCHAT_COMMAND_EXPIRED"
COMMAND_FINISHED = "LINKCHAT_COMMAND_FINISHED"
COMMAND_NOT_EXPIRED = "LINKCHAT_COMMAND_NOT_EXPIRED"

# The server's own user, a member of every device room, which appends expiries.
# A localpart starting with "_" cannot be registered (accounts/identifiers.py).
SYSTEM_LOCALPART = "_linkchat"
DEVICE_EVENT_TYPES = frozenset(
    {
        types.DEVICE_CAPABILITIES,
        types.DEVICE_COMMAND,
        types.DEVICE_RESULT,
        types.DEVICE_COMMAND_EXPIRED,
    }
)
_CHECKED = DEVICE_EVENT_TYPES | {types.ENCRYPTION}
ACTION_NAME_PATTERN = re.compile(ACTION_NAME.removeprefix("^").removesuffix("$"))


def system_user(server_name: str) -> str:
    return f"@{SYSTEM_LOCALPART}:{server_name}"


def system_user_of(room_id: str) -> str:
    return system_user(room_id.partition(":")[2])


@dataclass(frozen=True, slots=True)
class DeviceRoomCreation(Draft):
    """The m.room.create of a device room: only the device service makes one."""


@dataclass(frozen=True, slots=True)
class DeviceRoom:
    device_user_id: str
    owner_user_id: str


def device_room_of(state: RoomState) -> DeviceRoom | None:
    """Who the device and its owner are, when `state` is a device room's."""
    create = state.content(types.CREATE)
    if create is None or create.get("type") != types.DEVICE_ROOM_TYPE:
        return None
    device, owner = create.get("device_user_id"), create.get("owner_user_id")
    if not isinstance(device, str) or not isinstance(owner, str):
        return None
    return DeviceRoom(device, owner)


def authorize(
    state: RoomState, draft: Draft, commands: CommandFacts | None, now_ms: int | None = None
) -> None:
    """Raise MatrixError unless `draft` may be appended to the room `state`, by these rules."""
    if draft.type == types.CREATE:
        if draft.content.get("type") == types.DEVICE_ROOM_TYPE and not isinstance(
            draft, DeviceRoomCreation
        ):
            raise forbidden("Device rooms are made with POST /_linkchat/v1/devices.")
        return
    if draft.type not in _CHECKED:
        return
    room = device_room_of(state)
    if room is None:
        return
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    if draft.type == types.ENCRYPTION:
        raise forbidden("A device room is not encrypted: the server checks every command.")
    if draft.type == types.DEVICE_CAPABILITIES:
        _authorize_capabilities(room, draft)
    elif draft.type == types.DEVICE_COMMAND:
        _authorize_command(state, room, draft)
    elif draft.type == types.DEVICE_RESULT:
        _authorize_result(room, draft, commands, now)
    else:
        _authorize_expiry(draft, commands, now)


def register(rules: ChainRules) -> None:
    rules.add_with_facts(ROOM, _CHECKED | {types.CREATE}, authorize, load_facts)


# Capabilities


@dataclass(frozen=True, slots=True)
class CheckedCapabilities(Draft):
    """Capabilities whose schemas were checked before the append lock (DeviceEventChecks).

    Checking a schema is the costly part (up to CHECK_DEADLINE_S of the
    meta-schema and a trial run); it depends on the content alone, so it is
    done outside the lock, and under it only `problem`, the refusal it found if
    any, is raised in its place among the other rules.
    """

    problem: MatrixError | None = None


def _authorize_capabilities(room: DeviceRoom, draft: Draft) -> None:
    if draft.sender != room.device_user_id:
        raise forbidden("Only the device publishes its capabilities.")
    if draft.state_key != "":
        raise bad_json(f"{types.DEVICE_CAPABILITIES} is a state event with the state key ''.")
    if isinstance(draft, CheckedCapabilities):
        if draft.problem is not None:
            raise draft.problem
        return
    check_capabilities(draft.content)


def check_capabilities(content: Mapping[str, Any]) -> None:
    """400 M_BAD_JSON naming the action unless every argument schema can be used.

    Bounded: see schemas.check_published.
    """
    capabilities = parse(CapabilitiesContent, content)
    for name, action in capabilities.actions.items():
        where = f"content.actions.{name}"
        if not ACTION_NAME_PATTERN.fullmatch(name):
            raise bad_json(f"{where}: an action name is 1-64 of A-Z a-z 0-9 _ . : -")
        for ref in _refs(action.args_schema):
            if not ref.startswith("#"):
                raise bad_json(
                    f"{where}.args_schema: $ref {ref!r} points outside the schema;"
                    " an argument schema must be self-contained."
                )
    try:
        schemas.check_published(
            {name: action.args_schema for name, action in capabilities.actions.items()}
        )
    except schemas.PublishRefused as refused:
        where = "content.actions"
        if refused.action is not None:
            where += f".{refused.action}.args_schema"
        raise bad_json(f"{where}: {refused.reason}.") from None


def _refs(schema: object) -> Iterator[str]:
    pending = [schema]
    while pending:
        item = pending.pop()
        if isinstance(item, Mapping):
            for key, value in item.items():
                if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                    yield value
                else:
                    pending.append(value)
        elif isinstance(item, list):
            pending.extend(item)


# Commands


@dataclass(frozen=True, slots=True)
class CheckedCommand(Draft):
    """A command whose args were checked before the append lock against the
    capabilities event `capabilities_id` (DeviceEventChecks).

    Under the lock it is refused with STATE_CHANGED if the device published
    other capabilities since (the sender checks it again), else `problem`, the
    refusal the check found if any, is raised in its place among the rules.
    """

    capabilities_id: str | None = None
    problem: MatrixError | None = None


def _authorize_command(state: RoomState, room: DeviceRoom, draft: Draft) -> None:
    if draft.is_state:
        raise bad_json(f"{types.DEVICE_COMMAND} is not a state event.")
    # The device's power level is below the command level; this holds even if
    # someone raised it: a device never commands itself.
    if draft.sender in (room.device_user_id, system_user_of(draft.room_id)):
        raise forbidden("A device does not send commands.")
    if state.membership(room.device_user_id) != "join":
        raise forbidden("This device has been retired: it is no longer in its room.")
    published = state.get(types.DEVICE_CAPABILITIES)
    if isinstance(draft, CheckedCommand):
        if (published.event_id if published is not None else None) != draft.capabilities_id:
            raise state_changed("The device's capabilities")
        if draft.problem is not None:
            raise draft.problem
        return
    # Not checked before the lock (no sender does this today): bounded all the
    # same, by the schema and args sizes and the check's budget.
    check_command(published.content if published is not None else None, draft.content)


def check_command(capabilities: Mapping[str, Any] | None, content: Mapping[str, Any]) -> None:
    """400 M_BAD_JSON (413 M_TOO_LARGE for big args) unless the capabilities accept the command.

    Bounded: see device_control/schemas.py.
    """
    command = parse(CommandContent, content)
    actions = capabilities.get("actions") if capabilities is not None else None
    if not isinstance(actions, Mapping):
        raise bad_json("content.action: the device has not published its capabilities yet.")
    action = actions.get(command.action)
    schema = action.get("args_schema") if isinstance(action, Mapping) else None
    if not isinstance(schema, Mapping):
        accepted = ", ".join(sorted(actions)) or "none"
        raise bad_json(
            f"content.action: the device does not accept {command.action!r}"
            f" (it accepts: {accepted})."
        )
    if (size := schemas.args_size(command.args)) > schemas.MAX_ARGS_BYTES:
        raise too_large(f"content.args: {size} bytes, at most {schemas.MAX_ARGS_BYTES}.")
    try:
        schemas.check_args(schema, command.args)
    except schemas.ArgsInvalid as invalid:
        raise bad_json(f"content.args{invalid.path}: {invalid.message}") from None
    except schemas.SchemaRefused as refused:
        raise bad_json(
            f"content.args: the device's schema for {command.action!r} cannot be used"
            f" ({refused}); the device must publish its capabilities again."
        ) from None
    except schemas.TooCostly:
        raise bad_json(
            f"content.args: checking them against the device's schema for {command.action!r}"
            " takes too long; send smaller arguments."
        ) from None


# Results and expiries


def _authorize_result(
    room: DeviceRoom, draft: Draft, commands: CommandFacts | None, now_ms: int
) -> None:
    command_id, expires_ts = _answered(
        draft, commands, ResultContent, room.device_user_id, "Only the device sends results."
    )
    if now_ms >= expires_ts:
        raise MatrixError(410, COMMAND_EXPIRED, f"Command {command_id} has expired.")


def _authorize_expiry(draft: Draft, commands: CommandFacts | None, now_ms: int) -> None:
    command_id, expires_ts = _answered(
        draft,
        commands,
        ExpiredContent,
        system_user_of(draft.room_id),
        "Only the server marks a command expired.",
    )
    if now_ms < expires_ts:
        raise MatrixError(409, COMMAND_NOT_EXPIRED, f"Command {command_id} has not expired yet.")


def _answered(
    draft: Draft,
    commands: CommandFacts | None,
    model: type[ResultContent] | type[ExpiredContent],
    sender: str,
    refusal: str,
) -> tuple[str, int]:
    """The command an answer (a result, an expiry) from its one sender answers, and the
    command's expiry time."""
    if draft.sender != sender:
        raise forbidden(refusal)
    if draft.is_state:
        raise bad_json(f"{draft.type} is not a state event.")
    command_id = parse(model, draft.content).relates_to.event_id
    return command_id, _open_command(draft, commands, command_id)


def _open_command(draft: Draft, commands: CommandFacts | None, command_id: str) -> int:
    """The expiry time of a command of this room nobody finished yet; refused otherwise."""
    found = commands.commands.get(command_id) if commands is not None else None
    if found is None or found.room_id != draft.room_id:
        raise MatrixError(404, UNKNOWN_COMMAND, f"No command {command_id} in this room.")
    if found.status == EXPIRED:
        raise MatrixError(410, COMMAND_EXPIRED, f"Command {command_id} has expired.")
    if found.status in TERMINAL:
        raise MatrixError(
            409, COMMAND_FINISHED, f"Command {command_id} is finished ({found.status})."
        )
    return found.expires_ts
