"""The timer loop of a follower's `lead` (log/followers.py): fire what is due, sleep until
the next deadline, again, for as long as the process holds the lease.

Command expiry (device_control/expiry.py) and mute expiry
(moderation/mute_expiry.py) keep their deadlines in a heap they rebuild from a
projection when they take the lease; this loop is what they share.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from homeserver.alarm import Alarm

log = logging.getLogger(__name__)

# The longest sleep, so a change of the wall clock is noticed.
MAX_SLEEP_MS = 30_000
# After a failed round (the database away), the next one.
RETRY_SECONDS = 1.0


async def run_timers(
    fire_due: Callable[[int], Awaitable[None]],
    earliest: Callable[[], int | None],
    wake: Alarm,
    now_ms: Callable[[], int],
    what: str,
) -> None:
    """Forever: `fire_due(now)`, then sleep until `earliest()` (ms since the epoch; None:
    nothing waits) or until `wake` rings (an earlier deadline came). A failed round is
    logged and tried again, unless the task is being cancelled (the lease was lost)."""
    while True:
        try:
            await fire_due(now_ms())
        except Exception:
            if (task := asyncio.current_task()) is not None and task.cancelling():
                raise asyncio.CancelledError from None  # lost the lease meanwhile
            log.exception("%s failed; trying again", what)
            await asyncio.sleep(RETRY_SECONDS)
            continue
        wait_ms = MAX_SLEEP_MS
        if (first := earliest()) is not None:
            wait_ms = min(wait_ms, first - now_ms())
        await wake.sleep(max(wait_ms, 0) / 1000)
