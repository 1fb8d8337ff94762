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

import bisect

# Positions remembered; a token further back is answered by the store.
HEARD_SIZE = 10_000


class HeardChanges:
    def __init__(self, size: int = HEARD_SIZE) -> None:
        self._size = size
        self._positions: list[int] = []  # sorted; they arrive about in order
        self._users: dict[int, str] = {}
        self._last: dict[str, int] = {}  # each user's latest position here

    def heard(self, position: int, user_id: str) -> None:
        """The change at `position` was the user's (this process's own, or a bus message)."""
        if position in self._users:
            return
        positions = self._positions
        if not positions or position > positions[-1]:
            positions.append(position)
        else:
            bisect.insort(positions, position)
        self._users[position] = user_id
        if position > self._last.get(user_id, 0):
            self._last[user_id] = position
        while len(positions) > self._size:
            oldest = positions.pop(0)
            user = self._users.pop(oldest)
            if self._last.get(user) == oldest:
                del self._last[user]

    def _range(self, after: int, upto: int) -> tuple[int, int] | None:
        """Where (after, upto] lies in the positions, if every one of them was heard."""
        low = bisect.bisect_right(self._positions, after)
        high = bisect.bisect_right(self._positions, upto)
        return (low, high) if high - low == max(0, upto - after) else None

    def changed(self, after: int, upto: int) -> list[str] | None:
        """Users with a change in (after, upto], each once; None when one of those
        positions was not heard of."""
        found = self._range(after, upto)
        if found is None:
            return None
        users = self._users
        return list(dict.fromkeys(users[p] for p in self._positions[found[0] : found[1]]))

    def changed_user(self, user_id: str, after: int, upto: int) -> bool | None:
        """Whether the user has a change in (after, upto]; None when one of those
        positions was not heard of. Without listing everyone who changed: what a sync
        of a user who shares presence with nobody asks."""
        found = self._range(after, upto)
        if found is None:
            return None
        last = self._last.get(user_id, 0)
        if last <= after:
            return False
        if last <= upto:
            return True
        users = self._users
        return any(users[p] == user_id for p in self._positions[found[0] : found[1]])
