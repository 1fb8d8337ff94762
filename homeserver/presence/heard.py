"""The presence changes this process has heard of lately, by position: "who changed after
my token" answered from memory instead of the store, for every sync that finds the
presence position moved (on a busy server, nearly every one: one message woke 25,000
connections, and each asked the store).

A store gives each visible change the next position (migrations/0022's counter, a
Redis INCR, a counter in memory), with none skipped. So a position missing between a
token and the position asked about is a change not heard of yet (its bus message on
the way, or lost while the bus was away): then only the store can answer.
"""

from __future__ import annotations

# Positions remembered; a token further back is answered by the store.
HEARD_SIZE = 10_000


class HeardChanges:
    def __init__(self, size: int = HEARD_SIZE) -> None:
        self._users: dict[int, str] = {}
        self._size = size

    def heard(self, position: int, user_id: str) -> None:
        """The change at `position` was the user's (this process's own, or a bus message)."""
        self._users[position] = user_id
        while len(self._users) > self._size:
            # About the oldest: a position dropped out of order is only a gap, which
            # sends a sync to the store.
            del self._users[next(iter(self._users))]

    def changed(self, after: int, upto: int) -> list[str] | None:
        """Users with a change in (after, upto], each once; None when one of those
        positions was not heard of."""
        if upto - after > self._size:
            return None
        users = self._users
        found: dict[str, None] = {}
        for position in range(after + 1, upto + 1):
            user_id = users.get(position)
            if user_id is None:
                return None
            found[user_id] = None
        return list(found)
