"""The user directory: find users by display name or user ID.

As the spec asks, a search considers at least the users the searcher shares a
room with and those in public rooms (publicly joinable or world_readable, as
Synapse's directory counts them); with `user_directory.search_all_users`
every user of the server. Each word of the term must begin a word of the
user's display name or localpart, case-insensitively ("ali smi" finds
"Alice Smith" and @alice.smith).
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import Any

import asyncpg

from homeserver.errors import invalid_param
from homeserver.store import user_directory as directory_store

JsonDict = dict[str, Any]

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
MAX_TERM_LENGTH = 1000


@dataclass(eq=False)
class UserDirectoryService:
    pool: asyncpg.Pool
    _: KW_ONLY
    search_all_users: bool = False

    async def search(self, searcher: str, term: str, limit: int = DEFAULT_LIMIT) -> JsonDict:
        """POST /user_directory/search: {results: [{user_id, display_name?, avatar_url?}],
        limited}."""
        if len(term) > MAX_TERM_LENGTH:
            raise invalid_param(f"search_term may be at most {MAX_TERM_LENGTH} characters long.")
        limit = max(0, min(limit, MAX_LIMIT))
        term = term.strip()
        if term.startswith("@"):
            # A user ID matches on its localpart: the server name is everyone's.
            term = term[1:].partition(":")[0]
        async with self.pool.acquire() as conn:
            words = await directory_store.term_words(conn, term)
            found = (
                await directory_store.search(
                    conn,
                    searcher,
                    directory_store.prefix_query(words),
                    term.lower(),
                    limit + 1,
                    search_all_users=self.search_all_users,
                )
                if words and limit
                else []
            )
        results: list[JsonDict] = []
        for entry in found[:limit]:
            result: JsonDict = {"user_id": entry.user_id}
            if entry.displayname is not None:
                result["display_name"] = entry.displayname
            if entry.avatar_url is not None:
                result["avatar_url"] = entry.avatar_url
            results.append(result)
        return {"results": results, "limited": len(found) > limit}
