"""Read-modify-write of a fact: compute a StateEdit from what is there, append it, and
compute it again when another change got in first.

A StateEdit names the event it was computed from, and the appender refuses it
(STATE_CHANGED) under the append lock if another has replaced that event
meanwhile (log/rules.py), so two concurrent edits never lose one: the second
reads the new state and is computed again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from homeserver.errors import MatrixError
from homeserver.events.model import STATE_CHANGED, Draft, Event
from homeserver.log.appender import Appender

MAX_ATTEMPTS = 10


async def append_edit(
    appender: Appender, compute: Callable[[], Awaitable[Draft | None]], what: str
) -> Event | None:
    """Append the draft `compute()` makes from the state it reads (None: nothing to
    change); again while another change gets in first, at most MAX_ATTEMPTS times,
    then 409 "`what` kept changing"."""
    for _ in range(MAX_ATTEMPTS):
        draft = await compute()
        if draft is None:
            return None
        try:
            return await appender.append(draft)
        except MatrixError as refused:
            if refused.errcode != STATE_CHANGED:
                raise
    raise MatrixError(409, STATE_CHANGED, f"{what} kept changing; try again.")
