"""The costly device rules, run before the append lock and off the event loop.

Checking capabilities (their schemas against the meta-schema, a trial run)
and a command's args (against the device's schema) is bounded
(device_control/schemas.py) but can still take a good part of
schemas.CHECK_DEADLINE_S. Under the append lock that would stall every writer
of every process, and on the event loop every request of this one. So the
room service hands each draft of a device room to `checked` before appending
it: the check runs in a worker thread (jsonschema is pure Python and holds the
GIL, but the loop gets it back every switch interval), and its verdict rides
along in the draft (CheckedCapabilities, CheckedCommand), for the rules under
the lock to raise in its place, after the checks that decide who may send.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg

from homeserver.device_control import rules
from homeserver.errors import MatrixError
from homeserver.events import types
from homeserver.events.model import Draft
from homeserver.store import rooms as room_store


def _verdict(check: Callable[[], None]) -> MatrixError | None:
    try:
        check()
    except MatrixError as refused:
        return refused
    return None


class DeviceEventChecks:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def checked(self, draft: Draft) -> Draft:
        """`draft`, with the verdict of the costly checks when it is one of a device room's."""
        if type(draft) is not Draft:
            return draft  # a service's own kind of draft, checked under the lock
        if draft.type == types.DEVICE_CAPABILITIES and draft.is_state:
            if not await self._is_device_room(draft.room_id):
                return draft
            content = draft.content
            problem = await asyncio.to_thread(_verdict, lambda: rules.check_capabilities(content))
            return rules.CheckedCapabilities(**_fields(draft), problem=problem)
        if draft.type == types.DEVICE_COMMAND and not draft.is_state:
            async with self._pool.acquire() as conn:
                create = await room_store.state_event(conn, draft.room_id, types.CREATE, "")
                if create is None or create.content.get("type") != types.DEVICE_ROOM_TYPE:
                    return draft
                published = await room_store.state_event(
                    conn, draft.room_id, types.DEVICE_CAPABILITIES, ""
                )
            capabilities = published.content if published is not None else None
            content = draft.content
            problem = await asyncio.to_thread(
                _verdict, lambda: rules.check_command(capabilities, content)
            )
            return rules.CheckedCommand(
                **_fields(draft),
                capabilities_id=published.event_id if published is not None else None,
                problem=problem,
            )
        return draft

    async def _is_device_room(self, room_id: str) -> bool:
        async with self._pool.acquire() as conn:
            create = await room_store.state_event(conn, room_id, types.CREATE, "")
        return create is not None and create.content.get("type") == types.DEVICE_ROOM_TYPE


def _fields(draft: Draft) -> Mapping[str, Any]:
    return {field.name: getattr(draft, field.name) for field in dataclasses.fields(Draft)}
