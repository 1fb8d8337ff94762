"""The audit trail: every admin action is a fact of the moderation chain, recorded here.

One function records them all (`AuditTrail.record`): who (the admin, the
event's sender), what (`action`, dotted: `user.deactivate`), on whom
(`target`: a user, room, event, media or report ID), why (`reason`) and when
(the event's origin_server_ts), with `details` for what else the action
carried. The facts an action changes are appended in the same group as its
record, so the log never holds one without the other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from homeserver.errors import invalid_param
from homeserver.events import types
from homeserver.events.content.admin import AdminActionContent
from homeserver.events.content.parsing import parsed
from homeserver.events.model import Draft, Event, JsonDict, StateEdit
from homeserver.log.appender import Appender
from homeserver.log.edits import retry_edit
from homeserver.rooms.service import STATE_EDIT_ATTEMPTS
from homeserver.store import admin as admin_store
from homeserver.store import rooms as room_store
from homeserver.store.admin import ActionRow

MAX_PAGE = 1000

# Which actions a page lists (for the handlers, which do not import store/).
ActionFilter = admin_store.ActionFilter


@dataclass(frozen=True, slots=True)
class AuditPage:
    actions: list[JsonDict]
    total: int
    next_token: str | None


def _rendered(row: ActionRow) -> JsonDict:
    action: JsonDict = {
        "id": row.event_id,
        "ts": row.ts,
        "admin": row.admin_id,
        "action": row.action,
    }
    if row.target is not None:
        action["target"] = row.target
    if row.reason is not None:
        action["reason"] = row.reason
    if row.details is not None:
        action["details"] = orjson.loads(row.details)
    action["position"] = row.stream_position
    return action


class AuditTrail:
    def __init__(self, pool: asyncpg.Pool, appender: Appender, server_name: str) -> None:
        self._pool = pool
        self._appender = appender
        self.chain = types.moderation_chain(server_name)

    def fact(
        self, sender: str, event_type: str, content: JsonDict, state_key: str | None = None
    ) -> Draft:
        """A draft of a moderation fact (an admin flag, a block), for `record`'s `facts`."""
        return Draft(self.chain, sender, event_type, content, state_key=state_key)

    async def record(
        self,
        admin: str,
        action: str,
        *,
        target: str | None = None,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
        facts: Sequence[Draft] = (),
    ) -> Event:
        """Append the record of `admin`'s `action`, after `facts` (drafts of any chain, the
        changes the action makes) in one group: all are appended, or none is."""
        content: JsonDict = {"action": action}
        if target is not None:
            content["target"] = target
        if reason is not None:
            content["reason"] = reason
        if details:
            content["details"] = dict(details)
        parsed(AdminActionContent, content)
        events = await self._appender.append_group(
            [*facts, Draft(self.chain, admin, types.ADMIN_ACTION, content)]
        )
        return events[-1]

    async def record_edit(
        self,
        admin: str,
        action: str,
        target: str,
        edit: Callable[[Event | None], JsonDict | None],
        *,
        event_type: str,
        reason: str | None,
        details: Mapping[str, Any],
        what: str,
    ) -> None:
        """Record `admin`'s `action` on `target` with the moderation fact (`event_type`,
        keyed by `target`) that `edit` makes of the current one; None: it is already so,
        and nothing is recorded. The fact is a StateEdit of the current one, so two admins
        acting at once cannot lose a change: it is computed again (log/edits.py)."""

        async def attempt() -> None:
            async with self._pool.acquire() as conn:
                current = await room_store.state_event(conn, self.chain, event_type, target)
            content = edit(current)
            if content is None:
                return
            fact = StateEdit(
                self.chain,
                admin,
                event_type,
                content,
                target,
                replaces=current.event_id if current is not None else None,
            )
            await self.record(
                admin, action, target=target, reason=reason, details=details, facts=[fact]
            )

        await retry_edit(attempt, what, attempts=STATE_EDIT_ATTEMPTS)

    async def actions(
        self, found: ActionFilter, *, token: str | None, limit: int, forwards: bool
    ) -> AuditPage:
        """A page of the actions matching `found`: newest first, or oldest first when
        `forwards`; `token` (a page's next_token) continues after the last page."""
        if not 1 <= limit <= MAX_PAGE:
            raise invalid_param(f"limit must be between 1 and {MAX_PAGE}")
        position: int | None = None
        if token is not None:
            if not token.isdigit() or len(token) > 18:
                raise invalid_param("from: not a token of this list")
            position = int(token)
        async with self._pool.acquire() as conn:
            rows = await admin_store.admin_actions(
                conn,
                found,
                after=position if forwards else None,
                before=position if not forwards else None,
                limit=limit + 1,
                forwards=forwards,
            )
            total = await admin_store.count_admin_actions(conn, found)
        more = len(rows) > limit
        rows = rows[:limit]
        next_token = str(rows[-1].stream_position) if more else None
        return AuditPage([_rendered(row) for row in rows], total, next_token)
