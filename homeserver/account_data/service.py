"""Account data (global and per room) and room tags: the API's reads and writes, and sync's.

Each piece is a fact in its owner's chain (account_data/facts.py; receipts/
writes m.fully_read, friends/ m.direct and the ignore list, the same way);
projections/accounts.py makes the `account_data` table that sync and the GET
endpoints read. Tags are the `m.tag` room account data
`{"tags": {tag: {order?}}}`: adding or removing one is a read-modify-write,
appended as a StateEdit so two concurrent tag changes never lose one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.account_data.facts import (
    GLOBAL,
    account_data_draft,
    account_data_edit,
    account_data_key,
)
from homeserver.errors import MatrixError, invalid_param, not_found
from homeserver.events import types
from homeserver.events.model import Draft
from homeserver.log.appender import Appender
from homeserver.log.edits import append_edit
from homeserver.store import account_data as account_data_store

JsonDict = dict[str, Any]

FULLY_READ = "m.fully_read"
PUSH_RULES = "m.push_rules"
# Types the server keeps, and the API that changes each (the spec's 405 M_BAD_JSON).
SERVER_KEPT = {FULLY_READ: "/rooms/{roomId}/read_markers", PUSH_RULES: "/pushrules"}
# The spec: a tag name must not exceed 255 bytes.
MAX_TAG_BYTES = 255


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


def _merged_under(tags: JsonDict) -> Callable[[JsonDict], JsonDict]:
    """An edit adding `tags` to the ones held, which win where both name a tag."""
    return lambda held: {**tags, **held}


@dataclass(eq=False)
class AccountDataService:
    pool: asyncpg.Pool
    appender: Appender

    async def get(self, user_id: str, room_id: str, data_type: str) -> JsonDict:
        """The content of one piece of account data (room_id "" for global), or 404."""
        async with self.pool.acquire() as conn:
            content = await account_data_store.content(conn, user_id, room_id, data_type)
        # (The global m.push_rules is served by push/: api/account_data.py asks it.)
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
        await self.appender.append(account_data_draft(user_id, room_id, data_type, content))

    # Tags

    async def tags(self, user_id: str, room_id: str) -> JsonDict:
        async with self.pool.acquire() as conn:
            content = await account_data_store.content(conn, user_id, room_id, types.TAG)
        return {"tags": _tags_of(content)}

    async def put_tag(self, user_id: str, room_id: str, tag: str, content: JsonDict) -> None:
        _check_tag(tag, content)
        await self._edit_tags(user_id, room_id, lambda tags: {**tags, tag: content})

    async def delete_tag(self, user_id: str, room_id: str, tag: str) -> None:
        await self._edit_tags(
            user_id, room_id, lambda tags: {name: t for name, t in tags.items() if name != tag}
        )

    async def copy_room_tags(self, user_ids: Sequence[str], old_room: str, new_room: str) -> None:
        """Give each user's tags of `old_room` to `new_room` too (a room upgrade, as
        Synapse's copy_room_tags_and_direct_to_room); tags already there stay."""
        async with self.pool.acquire() as conn:
            contents = await account_data_store.contents_many(conn, user_ids, old_room, types.TAG)
        for user_id, content in zip(user_ids, contents, strict=True):
            if copied := _tags_of(content):
                await self._edit_tags(user_id, new_room, _merged_under(copied))

    async def _edit_tags(
        self, user_id: str, room_id: str, edit: Callable[[JsonDict], JsonDict]
    ) -> None:
        key = account_data_key(room_id, types.TAG)

        async def compute() -> Draft | None:
            async with self.pool.acquire() as conn:
                found = await account_data_store.fact(conn, user_id, key)
            replaces, current = found if found is not None else (None, {})
            tags = edit(_tags_of(current))
            if tags == _tags_of(current):
                return None
            return account_data_edit(
                user_id, room_id, types.TAG, {**current, "tags": tags}, replaces
            )

        await append_edit(self.appender, compute, "Your tags")

    # Reading, for sync

    async def global_account_data_for_sync(
        self, user_id: str, since: int | None, until: int
    ) -> list[JsonDict]:
        """Global account data events ({type, content}) written in (since, until]."""
        async with self.pool.acquire() as conn:
            rows = await account_data_store.changed_between(
                conn, user_id, since, until, rooms=False
            )
        return [{"type": row.type, "content": row.content} for row in rows]

    async def room_account_data_for_sync(
        self, user_id: str, since: int | None, until: int
    ) -> dict[str, list[JsonDict]]:
        """Per room, account data events ({type, content}) written in (since, until]."""
        async with self.pool.acquire() as conn:
            rows = await account_data_store.changed_between(conn, user_id, since, until, rooms=True)
        found: dict[str, list[JsonDict]] = {}
        for row in rows:
            found.setdefault(row.room_id, []).append({"type": row.type, "content": row.content})
        return found
