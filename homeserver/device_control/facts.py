"""The commands a batch's results and expiries answer, read under the append lock.

A result is refused for a command that is unknown, finished or expired. Those
are not in the device room's state (a room's state does not grow with every
command), so the appender asks `load_facts` once per batch, in the batch's
transaction after it took the lock, for the commands its drafts answer, and
folds each event the batch accepts into them (`CommandFacts.accepted`, the
same reading of events as the projection's), so a second result in the same
batch sees the first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

import asyncpg

import homeserver.store.device_control as device_store
from homeserver.events import types
from homeserver.events.model import Draft, Event
from homeserver.projections.device_control import PENDING, answered_command, command_of, status_of

ANSWERS = frozenset({types.DEVICE_RESULT, types.DEVICE_COMMAND_EXPIRED})


@dataclass(frozen=True, slots=True)
class CommandState:
    room_id: str
    expires_ts: int
    status: str


@dataclass(frozen=True, slots=True)
class CommandFacts:
    # The commands this batch's drafts answer (others are never looked up).
    wanted: frozenset[str]
    commands: Mapping[str, CommandState]

    def accepted(self, event: Event) -> CommandFacts:
        # Most batches answer no command: one check, and the facts stay as they are.
        if not self.wanted or event.type not in _FOLDED:
            return self
        if (sent := command_of(event)) is not None:
            if event.event_id not in self.wanted:
                return self
            return self._with(event.event_id, CommandState(event.room_id, sent.expires_ts, PENDING))
        answer = status_of(event)
        current = self.commands.get(answer.command_id) if answer is not None else None
        if answer is None or current is None or current.room_id != event.room_id:
            return self
        return self._with(answer.command_id, replace(current, status=answer.status))

    def _with(self, command_id: str, state: CommandState) -> CommandFacts:
        return CommandFacts(self.wanted, MappingProxyType({**self.commands, command_id: state}))


_FOLDED = ANSWERS | {types.DEVICE_COMMAND}
NO_FACTS = CommandFacts(frozenset(), MappingProxyType({}))


async def load_facts(conn: asyncpg.Connection, drafts: Sequence[Draft]) -> CommandFacts:
    wanted = frozenset(
        command_id
        for draft in drafts
        if draft.type in ANSWERS and (command_id := answered_command(draft.content)) is not None
    )
    if not wanted:
        return NO_FACTS
    rows = await device_store.command_states(conn, list(wanted))
    return CommandFacts(
        wanted,
        MappingProxyType(
            {row.command_id: CommandState(row.room_id, row.expires_ts, row.status) for row in rows}
        ),
    )
