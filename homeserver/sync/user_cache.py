"""What a sync reads of one user (their joined rooms, whom they ignore), kept until a
change names them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Generic, TypeVar

from homeserver.batching import Batched
from homeserver.sync.notifier import Notifier

Value = TypeVar("Value")
USERS_KEPT = 50_000


class UserCache(Generic[Value]):
    """Each user's value, read again once a change names them (`Notifier.generation`:
    read the generation before the value). A change naming many users (a to-device send
    to 200 devices) voids their entries at once: the reads of the syncs it wakes share
    one query per turn of the loop (`read` answers many users, in the order asked)."""

    def __init__(
        self, notifier: Notifier, read: Callable[[list[str]], Awaitable[Sequence[Value]]]
    ) -> None:
        self._notifier = notifier
        self._reads: Batched[str, Value] = Batched(read)
        self._kept: dict[str, tuple[int, Value]] = {}

    async def get(self, user_id: str) -> Value:
        generation = self._notifier.generation(user_id)
        kept = self._kept.get(user_id)
        if kept is not None and kept[0] == generation:
            return kept[1]
        value = await self._reads.ask(user_id)
        self._kept[user_id] = (generation, value)
        while len(self._kept) > USERS_KEPT:
            self._kept.pop(next(iter(self._kept)))
        return value

    async def get_many(self, user_ids: Iterable[str]) -> dict[str, Value]:
        """`get` for many users; those not kept are read in one call."""
        users = list(dict.fromkeys(user_ids))
        return dict(zip(users, await asyncio.gather(*map(self.get, users)), strict=True))
