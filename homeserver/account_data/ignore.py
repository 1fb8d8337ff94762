"""The ignore list: `m.ignored_user_list` global account data, `{"ignored_users": {user_id: {}}}`.

Sync, /messages, /context, /event and search leave out what ignored users
send; a block (friends/) adds the blocked user to it, an unblock removes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from homeserver.account_data.facts import GLOBAL, AccountDataEdit
from homeserver.events import types
from homeserver.store import account_data as account_data_store

JsonDict = dict[str, Any]


def ignored_user_ids(content: Mapping[str, Any] | None, owner: str) -> frozenset[str]:
    """The users an `m.ignored_user_list` content names (never its owner). Lenient, as
    the list is client-written account data: anything malformed ignores nobody."""
    ignored = content.get("ignored_users") if content is not None else None
    if not isinstance(ignored, dict):
        return frozenset()
    return frozenset(
        user for user in ignored if isinstance(user, str) and user.startswith("@") and user != owner
    )


async def ignored_users(conn: asyncpg.Connection, user_id: str) -> frozenset[str]:
    """Whom the user ignores (their global m.ignored_user_list)."""
    content = await account_data_store.content(conn, user_id, GLOBAL, types.IGNORED_USER_LIST)
    return ignored_user_ids(content, user_id)


async def ignored_users_many(
    conn: asyncpg.Connection, user_ids: Sequence[str]
) -> list[frozenset[str]]:
    """`ignored_users` of many users at once (one query), in the order asked."""
    contents = await account_data_store.contents_many(
        conn, user_ids, GLOBAL, types.IGNORED_USER_LIST
    )
    return [
        ignored_user_ids(content, owner) for content, owner in zip(contents, user_ids, strict=True)
    ]


def ignoring(user_id: str, ignore: bool) -> AccountDataEdit:
    """The edit of an ignore list's content that adds (or removes) `user_id`."""

    def edit(data: JsonDict) -> JsonDict:
        listed = data.get("ignored_users")
        ignored = dict(listed) if isinstance(listed, dict) else {}
        if ignore:
            ignored.setdefault(user_id, {})
        else:
            ignored.pop(user_id, None)
        data["ignored_users"] = ignored
        return data

    return edit
