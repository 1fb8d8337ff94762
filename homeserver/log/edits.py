"""Read-modify-write of a fact: compute a StateEdit from what is there, append it, and
compute it again when another change got in first.

A StateEdit names the event it was computed from, and the appender refuses it
(STATE_CHANGED) under the append lock if another has replaced that event
meanwhile (log/rules.py), so two concurrent edits never lose one: the second
reads the new state and is computed again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from homeserver.errors import MatrixError
from homeserver.events.model import STATE_CHANGED, Draft, Event
from homeserver.log.appender import Appender

MAX_ATTEMPTS = 10

T = TypeVar("T")


async def retry_edit(
    attempt: Callable[[], Awaitable[T]], what: str, *, attempts: int = MAX_ATTEMPTS
) -> T:
    """Run `attempt` (read the state, append an edit of it) again while another change
    gets in first, at most `attempts` times, then 409 "`what` kept changing"."""
    for _ in range(attempts):
        try:
            return await attempt()
        except MatrixError as refused:
            if refused.errcode != STATE_CHANGED:
                raise
    raise MatrixError(409, STATE_CHANGED, f"{what} kept changing; try again.")


async def append_edit(
    appender: Appender, compute: Callable[[], Awaitable[Draft | None]], what: str
) -> Event | None:
    """Append the draft `compute()` makes from the state it reads (None: nothing to
    change), with `retry_edit`."""

    async def attempt() -> Event | None:
        draft = await compute()
        return None if draft is None else await appender.append(draft)

    return await retry_edit(attempt, what)
