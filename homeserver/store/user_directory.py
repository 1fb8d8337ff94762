"""The user directory: profiles matched by word prefixes, limited to whom the searcher may find.

Matching uses `profiles.search_vector` and its GIN index (migrations/0009): the
search term is split into words by the same text-search parser that built the
vectors, and every word must start a word of the display name or localpart.
Whether the searcher may see a match is checked per match (index lookups) or,
when the planner expects many matches, against the set of visible users.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from homeserver.store.results import fetch_column


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    user_id: str
    displayname: str | None
    avatar_url: str | None


async def term_words(conn: asyncpg.Connection, term: str) -> list[str]:
    """The words of a search term, as the directory's vectors hold words (lower case)."""
    return await fetch_column(
        conn,
        "SELECT lexeme FROM unnest(to_tsvector('simple'::regconfig, $1)) ORDER BY lexeme",
        term,
    )


def prefix_query(words: list[str]) -> str:
    """A tsquery text matching every word as a prefix: 'ali':* & 'smi':*."""
    quoted = ("'" + word.replace("\\", "\\\\").replace("'", "''") + "':*" for word in words)
    return " & ".join(quoted)


SEARCH = """
SELECT p.user_id, p.displayname, p.avatar_url
FROM profiles p
WHERE p.search_vector @@ $2::tsquery
  AND NOT EXISTS (SELECT 1 FROM users u WHERE u.user_id = p.user_id AND u.deactivated)
  AND (
    $5::boolean
    OR p.user_id = $1
    OR EXISTS (
      SELECT 1 FROM room_members theirs
      JOIN room_members mine
        ON mine.room_id = theirs.room_id AND mine.user_id = $1 AND mine.membership = 'join'
      WHERE theirs.user_id = p.user_id AND theirs.membership = 'join'
    )
    OR EXISTS (
      SELECT 1 FROM room_members m
      JOIN user_directory_public_rooms pr ON pr.room_id = m.room_id
      WHERE m.user_id = p.user_id AND m.membership = 'join'
    )
  )
ORDER BY
  (lower(p.displayname) = $3 OR split_part(substr(p.user_id, 2), ':', 1) = $3) DESC,
  starts_with(lower(coalesce(p.displayname, '')), $3) DESC,
  starts_with(split_part(substr(p.user_id, 2), ':', 1), $3) DESC,
  (p.displayname IS NOT NULL) DESC,
  (p.avatar_url IS NOT NULL) DESC,
  lower(p.displayname),
  p.user_id
LIMIT $4
"""


async def search(
    conn: asyncpg.Connection,
    searcher: str,
    query: str,
    term: str,
    limit: int,
    *,
    search_all_users: bool,
) -> list[DirectoryEntry]:
    """Up to `limit` active users matching the tsquery `query`, best first (an exact
    match of `term`, lower case, before a prefix match); unless `search_all_users`,
    only the searcher, users sharing a joined room with them and members of public rooms
    (publicly joinable or world_readable)."""
    async with conn.transaction():
        # The planner cannot tell how many users a prefix matches and guesses high
        # enough to compile the query (JIT), which costs more than the search itself.
        await conn.execute("SET LOCAL jit = off")
        rows = await conn.fetch(SEARCH, searcher, query, term, limit, search_all_users)
    return [DirectoryEntry(r["user_id"], r["displayname"], r["avatar_url"]) for r in rows]
