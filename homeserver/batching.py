"""Requests made in one turn of the event loop, answered together by one query; reads
in flight shared by whoever asks the same meanwhile.

A change that wakes hundreds of long-polls at once (a room key sent to 200 devices)
has each of them ask the database the same kind of question; one query each takes
turns for the pool's connections. `Batched` gathers the questions asked in one turn
and answers them with one call. Imports nothing of ours, so every layer may use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
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


class SharedReads(Generic[Key, Answer]):
    """One read of a key at a time: a caller asking for keys already being read waits for
    those reads, and reads the others with one call of its own.

    One message to a room held by 12,500 long-polls of a worker woke them together, and
    each read the room's facts (members, power levels) and its user's push rules from
    the database before any had kept them. Each read runs as a task of its own, so a
    caller giving up (a client hanging up) does not cancel it for the others. A key
    names what the read must be as fresh as (say, the user's generation of changes)."""

    def __init__(self) -> None:
        self._reading: dict[Key, asyncio.Task[Mapping[Key, Answer]]] = {}

    async def read(
        self,
        keys: Sequence[Key],
        run: Callable[[list[Key]], Awaitable[Mapping[Key, Answer]]],
    ) -> dict[Key, Answer]:
        """Each key's answer: from the read of it in flight, else from `run(the rest)`,
        which answers every key it is given."""
        unread = [key for key in dict.fromkeys(keys) if key not in self._reading]
        if unread:
            task = asyncio.get_running_loop().create_task(_mapping(run(unread)))
            for key in unread:
                self._reading[key] = task
            task.add_done_callback(partial(self._done, unread))
        tasks = {key: self._reading[key] for key in keys}
        answers: dict[Key, Answer] = {}
        for task in dict.fromkeys(tasks.values()):
            found = await asyncio.shield(task)
            answers.update((key, found[key]) for key, t in tasks.items() if t is task)
        return answers

    def _done(self, keys: list[Key], task: asyncio.Task[Mapping[Key, Answer]]) -> None:
        for key in keys:
            if self._reading.get(key) is task:
                del self._reading[key]
        if not task.cancelled():
            task.exception()  # those who gave up are not told; the others were


async def _mapping(read: Awaitable[Mapping[Key, Answer]]) -> Mapping[Key, Answer]:
    return await read
