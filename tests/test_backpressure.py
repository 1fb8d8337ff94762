"""Backpressure: past the appender's queue, writes are refused at once with 503 and
Retry-After, instead of queueing without bound; what was accepted is written."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from homeserver.admission import Admission
from homeserver.store.events import APPEND_LOCK
from tests.conftest import AppFactory


async def test_writes_past_the_queue_are_refused_with_retry_after_and_none_is_lost(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    hs = await start_app(fresh_dsn, limits={"append_queue_events": 5})
    alice, _, room = await hs.room_of_two()
    blocker = await asyncpg.connect(fresh_dsn)
    try:
        # Stall the appender (as a slow database would): the queue fills up.
        await blocker.execute("SELECT pg_advisory_lock($1)", APPEND_LOCK)
        sends = [
            asyncio.create_task(
                hs.request(
                    "PUT",
                    f"rooms/{room}/send/m.room.message/bp{n}",
                    {"msgtype": "m.text", "body": f"bp {n}"},
                    user=alice,
                )
            )
            for n in range(20)
        ]
        await asyncio.sleep(1)
        refused = [send for send in sends if send.done()]
        # At most one batch in flight and five queued; the rest answered at once.
        assert len(refused) >= 20 - 6
        for send in refused:
            response = send.result()
            assert response.status == 503
            assert response.headers["Retry-After"] == "1"
            assert response.errcode == "M_UNKNOWN"
    finally:
        await blocker.execute("SELECT pg_advisory_unlock($1)", APPEND_LOCK)
        await blocker.close()
    accepted = [send for send in sends if send not in refused]
    for send in accepted:
        assert (await asyncio.wait_for(send, 30)).status == 200
    # The refused ones, retried with their transaction IDs, are written once each.
    for n, send in enumerate(sends):
        if send in refused:
            await hs.ok(
                "PUT",
                f"rooms/{room}/send/m.room.message/bp{n}",
                {"msgtype": "m.text", "body": f"bp {n}"},
                user=alice,
            )
    messages = await hs.ok("GET", f"rooms/{room}/messages?dir=b&limit=100", user=alice)
    bodies = [e["content"]["body"] for e in messages["chunk"] if e["type"] == "m.room.message"]
    assert sorted(bodies) == sorted(f"bp {n}" for n in range(20))


async def test_requests_past_those_in_progress_are_refused_but_health_and_sync_answer(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    hs = await start_app(fresh_dsn, limits={"max_requests_in_progress": 1})
    alice, _, room = await hs.room_of_two()
    blocker = await asyncpg.connect(fresh_dsn)
    try:
        await blocker.execute("SELECT pg_advisory_lock($1)", APPEND_LOCK)
        stuck = asyncio.create_task(
            hs.request(
                "PUT",
                f"rooms/{room}/send/m.room.message/in-progress",
                {"msgtype": "m.text", "body": "waits for the appender"},
                user=alice,
            )
        )
        await asyncio.sleep(0.5)  # in progress: the one place is taken
        refused = await hs.request("GET", "account/whoami", user=alice)
        assert (refused.status, refused.errcode) == (503, "M_UNKNOWN")
        assert refused.headers["Retry-After"] == "1"
        assert (await hs.request("GET", "/health")).status == 200
        assert (await hs.request("GET", "sync?timeout=0", user=alice)).status == 200
    finally:
        await blocker.execute("SELECT pg_advisory_unlock($1)", APPEND_LOCK)
        await blocker.close()
    assert (await asyncio.wait_for(stuck, 30)).status == 200
    assert (await hs.request("GET", "account/whoami", user=alice)).status == 200


async def test_a_loop_running_late_refuses_until_it_is_on_time_again() -> None:
    admission = Admission(limit=100, max_lag_seconds=0.05)
    watcher = asyncio.create_task(admission.watch_lag())
    try:
        await asyncio.sleep(0.2)
        # The loop blocked (as by a burst of work): everything waiting runs 1 s late.
        time.sleep(1)  # noqa: ASYNC251
        await asyncio.sleep(0.06)  # the lag timer's tick came 1 s late
        assert not admission.admit()
        assert admission.refused == 1

        async def on_time() -> bool:
            if admission.admit():
                admission.leave()
                return True
            return False

        deadline = asyncio.get_running_loop().time() + 30
        while not await on_time():
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
    finally:
        watcher.cancel()
