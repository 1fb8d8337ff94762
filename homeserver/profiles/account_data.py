"""Account data (global and per room) and room tags, written as facts in the owner's chain.

Each piece is a `com.linkchat.account_data` state event, keyed by (room, type),
in the account chain of its owner (receipts/service.py writes m.fully_read the
same way); projections/accounts.py makes the `account_data` table that sync and
the GET endpoints read. Tags are the `m.tag` room account data
`{"tags": {tag: {order?}}}`: adding or removing one is a read-modify-write,
appended as a StateEdit so two concurrent tag changes never lose one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg

from homeserver.errors import MatrixError, invalid_param, not_found
from homeserver.events import types
from homeserver.events.model import STATE_CHANGED, Draft, StateEdit
from homeserver.log.appender import Appender
from homeserver.push import ruleset as push_ruleset
from homeserver.receipts.service import account_data_key
from homeserver.store import account_data as account_data_store
from homeserver.store import rooms as room_store

JsonDict = dict[str, Any]
GLOBAL = account_data_store.GLOBAL

FULLY_READ = "m.fully_read"
PUSH_RULES = "m.push_rules"
# Types the server keeps, and the API that changes each (the spec's 405 M_BAD_JSON).
SERVER_KEPT = {FULLY_READ: "/rooms/{roomId}/read_markers", PUSH_RULES: "/pushrules"}
# The spec: a tag name must not exceed 255 bytes.
MAX_TAG_BYTES = 255
MAX_ATTEMPTS = 10


def _check_type(data_type: str) -> None:
    if not data_type:
        raise invalid_param("The account data type may not be empty.")
    if data_type in SERVER_KEPT:
        raise MatrixError(
            405,
            "M_BAD_JSON",
            f"Cannot set {data_type} through this API; use {SERVER_KEPT[data_type]}.",
        )


def _check_tag(tag: str, content: JsonDict) -> None:
    if not tag or len(tag.encode()) > MAX_TAG_BYTES:
        raise invalid_param(f"A tag name is 1 to {MAX_TAG_BYTES} bytes long.")
    order = content.get("order")
    if "order" in content and (isinstance(order, bool) or not isinstance(order, int | float)):
        raise invalid_param("A tag's order must be a number.")


def _tags_of(content: JsonDict | None) -> JsonDict:
    tags = content.get("tags") if content is not None else None
    return dict(tags) if isinstance(tags, dict) else {}


class AccountDataService:
    def __init__(self, pool: asyncpg.Pool, appender: Appender) -> None:
        self._pool = pool
        self._appender = appender

    async def get(self, user_id: str, room_id: str, data_type: str) -> JsonDict:
        """The content of one piece of account data (room_id "" for global), or 404."""
        async with self._pool.acquire() as conn:
            content = await account_data_store.content(conn, user_id, room_id, data_type)
        if data_type == PUSH_RULES and room_id == GLOBAL:
            # Push rules have their own API; here they read as Synapse shows them, with
            # today's server defaults (push/ruleset.py).
            return {"global": push_ruleset.effective(user_id, push_ruleset.global_of(content))}
        if content is not None:
            return content
        if data_type == PUSH_RULES:
            return {}
        if room_id == GLOBAL:
            raise not_found("Account data not found.")
        raise not_found("Room account data not found.")

    async def put(self, user_id: str, room_id: str, data_type: str, content: JsonDict) -> None:
        """A client's write replaces whatever was there."""
        _check_type(data_type)
        await self._appender.append(
            Draft(
                user_id,
                user_id,
                types.ACCOUNT_DATA,
                {"room_id": room_id, "type": data_type, "content": content},
                state_key=account_data_key(room_id, data_type),
            )
        )

    # Tags

    async def tags(self, user_id: str, room_id: str) -> JsonDict:
        async with self._pool.acquire() as conn:
            content = await account_data_store.content(conn, user_id, room_id, types.TAG)
        return {"tags": _tags_of(content)}

    async def put_tag(self, user_id: str, room_id: str, tag: str, content: JsonDict) -> None:
        _check_tag(tag, content)
        await self._edit_tags(user_id, room_id, lambda tags: {**tags, tag: content})

    async def delete_tag(self, user_id: str, room_id: str, tag: str) -> None:
        await self._edit_tags(
            user_id, room_id, lambda tags: {name: t for name, t in tags.items() if name != tag}
        )

    async def _edit_tags(
        self, user_id: str, room_id: str, edit: Callable[[JsonDict], JsonDict]
    ) -> None:
        key = account_data_key(room_id, types.TAG)
        for _ in range(MAX_ATTEMPTS):
            async with self._pool.acquire() as conn:
                fact = await room_store.state_event(conn, user_id, types.ACCOUNT_DATA, key)
            held = fact.content.get("content") if fact is not None else None
            current: JsonDict = dict(held) if isinstance(held, dict) else {}
            tags = edit(_tags_of(current))
            if tags == _tags_of(current):
                return
            draft = StateEdit(
                user_id,
                user_id,
                types.ACCOUNT_DATA,
                {"room_id": room_id, "type": types.TAG, "content": {**current, "tags": tags}},
                state_key=key,
                replaces=fact.event_id if fact is not None else None,
            )
            try:
                await self._appender.append(draft)
                return
            except MatrixError as refused:
                if refused.errcode != STATE_CHANGED:
                    raise
        raise MatrixError(409, STATE_CHANGED, "Your tags kept changing; try again.")
