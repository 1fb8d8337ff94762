"""Reads in flight shared by whoever asks the same meanwhile (homeserver/batching.py):
what keeps one message that wakes thousands of long-polls of a room from reading the
room's facts and each user's push rules once per long-poll."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from homeserver.batching import SharedReads


class Store:
    """A read that waits until released, and remembers what it was asked."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []
        self.released = asyncio.Event()
        self.broken = False

    async def run(self, keys: list[str]) -> Mapping[str, int]:
        self.asked.append(keys)
        await self.released.wait()
        if self.broken:
            raise ConnectionError("the database went away")
        return {key: len(key) for key in keys}


async def test_callers_asking_for_a_key_being_read_share_that_read() -> None:
    reads: SharedReads[str, int] = SharedReads()
    store = Store()
    first = asyncio.create_task(reads.read(["ab"], store.run))
    await asyncio.sleep(0)
    second = asyncio.create_task(reads.read(["ab", "xyz"], store.run))
    await asyncio.sleep(0)
    store.released.set()
    assert await first == {"ab": 2}
    assert await second == {"ab": 2, "xyz": 3}
    assert store.asked == [["ab"], ["xyz"]]  # "ab" once; "xyz" by the one who asked it


async def test_a_caller_giving_up_does_not_cancel_the_read_for_the_others() -> None:
    reads: SharedReads[str, int] = SharedReads()
    store = Store()
    first = asyncio.create_task(reads.read(["k"], store.run))
    await asyncio.sleep(0)
    second = asyncio.create_task(reads.read(["k"], store.run))
    await asyncio.sleep(0)
    first.cancel()  # its client hung up
    store.released.set()
    assert await second == {"k": 1}
    assert store.asked == [["k"]]


async def test_a_key_is_read_again_once_its_read_is_over() -> None:
    reads: SharedReads[str, int] = SharedReads()
    store = Store()
    store.released.set()
    assert await reads.read(["k"], store.run) == {"k": 1}
    assert await reads.read(["k"], store.run) == {"k": 1}
    assert store.asked == [["k"], ["k"]]  # keeping answers is the caller's business


async def test_a_failed_read_fails_those_waiting_on_it_and_the_next_ask_reads_again() -> None:
    reads: SharedReads[str, int] = SharedReads()
    store = Store()
    store.broken = True
    waiting = [asyncio.create_task(reads.read(["k"], store.run)) for _ in range(3)]
    await asyncio.sleep(0)
    store.released.set()
    for task in waiting:
        with pytest.raises(ConnectionError):
            await task
    store.broken = False
    assert await reads.read(["k"], store.run) == {"k": 1}
    assert store.asked == [["k"], ["k"]]
