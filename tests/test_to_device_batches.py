"""To-device reads and deletes of many long-polls woken at once are batched; each still gets
exactly its own messages."""

from __future__ import annotations

import asyncio

import pytest

from homeserver.batching import Batched
from tests.e2ee import login_again
from tests.matrix import MatrixClient, User


async def test_a_message_to_many_devices_reaches_each_long_poll_once(hs: MatrixClient) -> None:
    users = [await hs.register() for _ in range(6)]
    devices: list[User] = []
    for user in users:
        devices += [user, await login_again(hs, user), await login_again(hs, user)]
    since = {d.device_id: (await hs.ok("GET", "sync", user=d))["next_batch"] for d in devices}
    polls = [
        asyncio.create_task(hs.ok("GET", f"sync?since={since[d.device_id]}&timeout=20000", user=d))
        for d in devices
    ]
    await asyncio.sleep(0.3)
    messages = {
        d.user_id: {
            device.device_id: {"for": device.device_id}
            for device in devices
            if device.user_id == d.user_id
        }
        for d in devices
    }
    await hs.ok("PUT", "sendToDevice/m.test/t1", {"messages": messages}, user=users[0])

    for device, poll in zip(devices, polls, strict=True):
        got = (await poll)["to_device"]["events"]
        assert [event["content"] for event in got] == [{"for": device.device_id}]
        # The next sync acknowledges it: nothing is delivered twice.
        again = await hs.ok(
            "GET", f"sync?since={(await poll)['next_batch']}&timeout=0", user=device
        )
        assert again["to_device"]["events"] == []


async def test_one_caller_giving_up_leaves_the_others_their_answers() -> None:
    seen: list[list[int]] = []

    async def double(keys: list[int]) -> list[int]:
        seen.append(keys)
        await asyncio.sleep(0.01)
        return [key * 2 for key in keys]

    batched: Batched[int, int] = Batched(double)
    tasks = [asyncio.create_task(batched.ask(n)) for n in range(5)]
    await asyncio.sleep(0)
    tasks[2].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)

    assert seen == [[0, 1, 2, 3, 4]]
    assert results[:2] == [0, 2] and results[3:] == [6, 8]
    assert isinstance(results[2], asyncio.CancelledError)


async def test_a_failed_query_fails_every_caller_of_its_batch() -> None:
    async def broken(keys: list[int]) -> list[int]:
        raise RuntimeError("database gone")

    batched: Batched[int, int] = Batched(broken)
    results = await asyncio.gather(*(batched.ask(n) for n in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    with pytest.raises(RuntimeError):
        await batched.ask(9)
