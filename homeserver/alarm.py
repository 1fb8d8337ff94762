"""A sleep that something else can cut short: long-polls and background loops wait on it.

`asyncio.Event` under `asyncio.timeout` did the same, but on Python 3.11 a
cancel that lands just as the timeout fires can be taken for the timeout and
swallowed, so a loop told to stop slept on (and shutdown hung on it); and it
cost more than the rest of a long-poll's wait. Here the sleep is one future
and one timer handle: a cancel is only ever a cancel, and `close` ends every
sleep for good.
"""

from __future__ import annotations

import asyncio


class Alarm:
    """`sleep(seconds)` returns True when `ring` was called (during the sleep or
    since the last one returned), False when the time ran out. After `close`,
    every sleep returns False at once."""

    __slots__ = ("_closed", "_future", "_rung")

    def __init__(self) -> None:
        self._rung = False
        self._closed = False
        self._future: asyncio.Future[None] | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    def ring(self) -> None:
        self._rung = True
        self._release()

    def close(self) -> None:
        self._closed = True
        self._release()

    def _release(self) -> None:
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)

    async def sleep(self, seconds: float | None) -> bool:
        """Until rung, closed, or `seconds` have passed (None: no time limit)."""
        if not self._rung and not self._closed:
            loop = asyncio.get_running_loop()
            future = self._future = loop.create_future()
            timer = (
                loop.call_later(max(0.0, seconds), _expire, future) if seconds is not None else None
            )
            try:
                await future
            finally:
                if timer is not None:
                    timer.cancel()
                self._future = None
        rung, self._rung = self._rung, False
        return rung and not self._closed


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
