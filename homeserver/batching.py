"""Requests made in one turn of the event loop, answered together by one query.

A change that wakes hundreds of long-polls at once (a room key sent to 200 devices)
has each of them ask the database the same kind of question; one query each takes
turns for the pool's connections. `Batched` gathers the questions asked in one turn
and answers them with one call. Imports nothing of ours, so every layer may use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Key = TypeVar("Key")
Answer = TypeVar("Answer")


class Batched(Generic[Key, Answer]):
    """Questions asked in one turn of the event loop, answered by one call of `run` (which
    answers them in the order asked). Each caller awaits its own answer; one that gives
    up (a client hanging up) leaves the others theirs; a failed call fails its batch."""

    def __init__(self, run: Callable[[list[Key]], Awaitable[Sequence[Answer]]]) -> None:
        self._run = run
        self._waiting: list[tuple[Key, asyncio.Future[Answer]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def ask(self, key: Key) -> Answer:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Answer] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._flush)
        self._waiting.append((key, future))
        return await future

    def _flush(self) -> None:
        batch, self._waiting = self._waiting, []
        task = asyncio.get_running_loop().create_task(self._answer(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, batch: list[tuple[Key, asyncio.Future[Answer]]]) -> None:
        try:
            answers = await self._run([key for key, _ in batch])
        except Exception as error:
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), answer in zip(batch, answers, strict=True):
            if not future.done():
                future.set_result(answer)
