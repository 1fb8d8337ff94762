"""Durable followers: every event handled once, by one process at a time, across crashes.

The runner is tested against real PostgreSQL with `Recorder` (tests/followers.py),
whose output (a row per event) is written in the transaction that moves its
position and is not idempotent, so a lost or doubled event shows. The kill -9
tests run real processes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from homeserver.api.app_keys import APPENDER, POOL
from homeserver.events import types
from homeserver.events.model import Draft
from homeserver.log.followers import Followers, Start
from homeserver.store import followers as follower_store
from tests.conftest import AppFactory
from tests.devices import COMMAND, DEVICE_CAPABILITIES, EXPIRED, command, paired_device
from tests.follower_process import BATCH_SIZE
from tests.follower_process import NAME as KILLED
from tests.followers import (
    Recorder,
    append_messages,
    create_followed_table,
    handled_counts,
    log_head,
    until,
)
from tests.matrix import MatrixClient
from tests.processes import REPO_ROOT, V3, ServerProcess, call, free_port, register
from tests.test_operations import _metrics, _sample


@dataclass
class Log:
    hs: MatrixClient
    dsn: str
    room_id: str
    sender: str

    async def append(self, count: int) -> list[int]:
        events = await append_messages(self.hs.app[APPENDER], self.room_id, self.sender, count)
        return [event.stream_position for event in events]


@pytest.fixture
async def log(start_app: AppFactory, fresh_dsn: str) -> Log:
    hs = await start_app(dsn=fresh_dsn)
    await create_followed_table(fresh_dsn)
    alice = await hs.register()
    room = await hs.create_room(alice)
    return Log(hs, fresh_dsn, room, alice.user_id)


Runners = Callable[..., Followers]


@pytest.fixture
async def runners(log: Log) -> AsyncIterator[Runners]:
    """Starts runners as app.py does (woken by the appender), stopped at the end.

    The catch-up period is an hour: whatever a test sees handled was woken for."""
    made: list[Followers] = []

    def make(*followers: Recorder, lease_check_seconds: float = 0.2) -> Followers:
        runner = Followers(
            log.hs.app[POOL],
            log.dsn,
            catch_up_seconds=3600,
            lease_check_seconds=lease_check_seconds,
            batch_size=50,
        )
        for follower in followers:
            runner.add(follower)
        log.hs.app[APPENDER].add_listener(lambda _batch: runner.wake())
        runner.start()
        made.append(runner)
        return runner

    yield make
    for runner in made:
        await runner.stop()


async def _handled_once_up_to(log: Log, name: str, head: int) -> None:
    async def done() -> bool:
        return sum((await handled_counts(log.dsn, name)).values()) >= head

    await until(done, f"{name} to handle positions up to {head}")
    assert await handled_counts(log.dsn, name) == {p: 1 for p in range(1, head + 1)}


async def _lease_holder_pid(dsn: str, name: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT l.pid FROM pg_locks l JOIN follower_positions f"
                " ON l.classid = $1 AND l.objid = f.follower_id AND l.objsubid = 2"
                " WHERE l.locktype = 'advisory' AND l.granted AND f.name = $2"
                # Advisory locks of every database show here; follower IDs repeat.
                " AND l.database = (SELECT oid FROM pg_database"
                " WHERE datname = current_database())",
                follower_store.FOLLOWER_LOCKS,
                name,
            )
        )
    finally:
        await conn.close()


async def _terminate(dsn: str, pid: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


# One runner


async def test_a_follower_handles_every_event_once_and_resumes_where_it_stopped(
    log: Log, runners: Runners
) -> None:
    await log.append(300)
    first = Recorder("resumer")
    runner = runners(first)
    head = await log_head(log.dsn)
    await _handled_once_up_to(log, "resumer", head)
    await runner.stop()

    later = await log.append(120)
    second = Recorder("resumer")
    runners(second)
    await _handled_once_up_to(log, "resumer", later[-1])
    assert second.handled[0] == first.handled[-1] + 1  # nothing read twice
    async with log.hs.app[POOL].acquire() as conn:
        assert await follower_store.position(conn, "resumer") == later[-1]


async def test_a_follower_that_starts_now_is_given_only_what_is_appended_later(
    log: Log, runners: Runners
) -> None:
    await log.append(20)
    recorder = Recorder("newcomer", start=Start.NOW)
    runners(recorder)
    await until(lambda: recorder.leads == 1, "the runner to take the lease")
    later = await log.append(5)
    await until(lambda: len(recorder.handled) >= 5, "the new events handled")
    assert recorder.handled == later


async def test_a_follower_is_given_only_its_event_types(log: Log, runners: Runners) -> None:
    topics = []
    for n in range(3):
        await log.append(30)
        draft = Draft(log.room_id, log.sender, types.TOPIC, {"topic": f"t{n}"}, "")
        topics.append((await log.hs.app[APPENDER].append(draft)).stream_position)
    await log.append(10)
    recorder = Recorder("topics", event_types=frozenset({types.TOPIC}))
    runner = runners(recorder)
    head = await log_head(log.dsn)
    await until(lambda: runner.statuses()[0].position == head, "the follower to reach the head")
    assert recorder.handled == topics


async def test_a_commit_wakes_a_waiting_follower_long_before_its_catch_up(
    log: Log, runners: Runners
) -> None:
    recorder = Recorder("woken", start=Start.NOW)
    runners(recorder)  # catches up once an hour
    await until(lambda: recorder.leads == 1, "the runner to take the lease")
    for n in range(3):
        [position] = await log.append(1)
        await until(lambda p=position: p in recorder.handled, f"event {n} handled")


# Several runners: one lease


async def test_of_two_runners_only_the_lease_holder_runs_a_follower(
    log: Log, runners: Runners
) -> None:
    a, b = Recorder("shared", "a"), Recorder("shared", "b")
    runners(a)
    runners(b)
    await log.append(200)
    await _handled_once_up_to(log, "shared", await log_head(log.dsn))
    assert sorted([a.leads, b.leads]) == [0, 1]
    assert not (a.handled and b.handled)


async def test_a_follower_is_taken_over_when_its_holders_connection_dies_mid_batch(
    log: Log, runners: Runners
) -> None:
    await log.append(120)
    a = Recorder("taken_over", "a")
    a.hold = asyncio.Event()  # its batches wait, rows written, in their transaction
    # Having lost its lease, a runner waits one check before taking leases again: a's
    # long wait lets b, checking every 0.2 s, take over (had a taken the lease back,
    # its next batch would wait on `hold` too, and nobody would handle anything).
    runner_a = runners(a, lease_check_seconds=10)
    await asyncio.wait_for(a.in_batch.wait(), 30)
    b = Recorder("taken_over", "b")
    runners(b)

    await _terminate(log.dsn, await _lease_holder_pid(log.dsn, "taken_over"))
    await _handled_once_up_to(log, "taken_over", await log_head(log.dsn))
    # What a had written in its batch was rolled back: b handled every event.
    assert a.handled == [] and b.leads == 1
    assert not runner_a.statuses()[0].leading
    more = await log.append(30)
    await _handled_once_up_to(log, "taken_over", more[-1])


async def test_a_stopped_runner_hands_its_follower_to_another(log: Log, runners: Runners) -> None:
    a, b = Recorder("handed_over", "a"), Recorder("handed_over", "b")
    runner_a = runners(a)
    await until(lambda: a.leads == 1, "a to lead")
    runners(b)
    first = await log.append(50)
    await until(lambda: first[-1] in a.handled, "a to handle the first events")
    await runner_a.stop()
    later = await log.append(50)
    await _handled_once_up_to(log, "handed_over", later[-1])
    assert b.leads == 1 and b.handled[-1] == later[-1]


async def test_a_runner_whose_connection_drops_takes_its_lease_again(
    log: Log, runners: Runners
) -> None:
    recorder = Recorder("reconnecting")
    runner = runners(recorder)
    await until(lambda: recorder.leads == 1, "the runner to take the lease")
    await _terminate(log.dsn, await _lease_holder_pid(log.dsn, "reconnecting"))
    await until(lambda: recorder.leads == 2, "the runner to take the lease again")
    more = await log.append(40)
    await _handled_once_up_to(log, "reconnecting", more[-1])
    assert runner.statuses()[0].leading


async def test_of_two_processes_handling_one_batch_only_the_first_commits(log: Log) -> None:
    """Should two processes ever both run a follower (one not yet aware its lease is
    gone), the position's compare-and-set lets one batch commit once."""
    first, second = await asyncpg.connect(log.dsn), await asyncpg.connect(log.dsn)
    try:
        await follower_store.register(first, "fenced", False, 0)
        async with first.transaction():
            assert await follower_store.advance(first, "fenced", 0, 10, 1)
            late = asyncio.create_task(_advance_in_transaction(second, "fenced", 0, 10))
            await asyncio.sleep(0.2)
            assert not late.done()  # it waits for the first to commit or roll back
        assert await late is False
        assert await follower_store.position(first, "fenced") == 10
    finally:
        await first.close()
        await second.close()


async def _advance_in_transaction(conn: asyncpg.Connection, name: str, old: int, new: int) -> bool:
    async with conn.transaction():
        return await follower_store.advance(conn, name, old, new, 2)


# Falling behind


async def test_catching_up_a_backlog_does_not_hold_up_appends(log: Log, runners: Runners) -> None:
    await log.append(2000)
    head = await log_head(log.dsn)
    recorder = Recorder("behind")
    recorder.hold = asyncio.Event()
    runner = runners(recorder)
    await asyncio.wait_for(recorder.in_batch.wait(), 30)

    # Its first batch is open (rows written, position row locked): appends go on.
    appended = await asyncio.wait_for(log.append(300), 60)
    assert recorder.handled == []
    [status] = runner.statuses()
    assert status.leading and status.position == 0 and status.lag_events == head
    async with log.hs.app[POOL].acquire() as conn:
        first_ts = await conn.fetchval(
            "SELECT origin_server_ts FROM events WHERE stream_position = 1"
        )
    assert status.oldest_unhandled_ts == first_ts
    assert status.lag_seconds(first_ts / 1000 + 5) == 5

    recorder.hold.set()
    await _handled_once_up_to(log, "behind", appended[-1])
    assert status.lag_events == 0 and status.oldest_unhandled_ts is None


# Metrics


async def test_metrics_show_the_followers_lease_position_and_lag(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    port = free_port()
    hs = await start_app(dsn=fresh_dsn, metrics={"enabled": True, "port": port})
    url = f"http://127.0.0.1:{port}/metrics"
    paired = await paired_device(hs)
    command_id = await command(hs, paired, ttl_ms=600_000)
    async with hs.app[POOL].acquire() as conn:
        position = await conn.fetchval(
            "SELECT stream_position FROM events WHERE event_id = $1", command_id
        )
    name = "device_control.command_expiry"

    async def reached() -> bool:
        found = _sample(await _metrics(url), "homeserver_follower_position", follower=name)
        return found is not None and found >= position

    await until(reached, "the command expiry follower to pass the command")
    text = await _metrics(url)
    assert _sample(text, "homeserver_follower_leading", follower=name) == 1
    assert _sample(text, "homeserver_follower_lag_events", follower=name) == 0
    assert _sample(text, "homeserver_follower_lag_seconds", follower=name) == 0


# kill -9


async def _next_line(process: asyncio.subprocess.Process, timeout_s: float = 60) -> str:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout_s)
    assert line, "the follower process ended"
    return line.decode().strip()


async def _follower_process(dsn: str, label: str, *extra: str) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMESERVER_")}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.follower_process",
        dsn,
        label,
        *extra,
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )


async def test_a_follower_killed_mid_batch_is_finished_by_another_process_exactly_once(
    log: Log,
) -> None:
    await log.append(400)
    head = await log_head(log.dsn)
    a = await _follower_process(log.dsn, "a", "--hang-in-batch", "4")
    b: asyncio.subprocess.Process | None = None
    try:
        assert await _next_line(a) == "leading"
        batches = [await _next_line(a) for _ in range(4)]
        # a is inside its 4th batch: rows written, not committed, and stays so.
        b = await _follower_process(log.dsn, "b")
        a.send_signal(signal.SIGKILL)
        await a.wait()
        assert await _next_line(b) == "leading"
        taken_over_at = int(batches[3].split()[1])

        await _handled_once_up_to(log, KILLED, head)
        conn = await asyncpg.connect(log.dsn)
        try:
            by = dict(
                await conn.fetch(
                    "SELECT handled_by, min(position) FROM followed_events"
                    " WHERE follower = $1 GROUP BY handled_by",
                    KILLED,
                )
            )
            counted = dict(
                await conn.fetch(
                    "SELECT handled_by, count(*) FROM followed_events"
                    " WHERE follower = $1 GROUP BY handled_by",
                    KILLED,
                )
            )
        finally:
            await conn.close()
        # a committed three batches; its fourth was lost with it, and b did it again.
        assert counted["a"] == 3 * BATCH_SIZE
        assert by["b"] == taken_over_at
    finally:
        for process in (a, b):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()


async def test_a_follower_frozen_mid_batch_is_taken_over_and_stops_when_it_wakes(
    log: Log,
) -> None:
    """A frozen holder (SIGSTOP: like a machine that stopped answering, it closes
    nothing) keeps its connections open, the one holding its lease and the one
    in its batch's transaction. PostgreSQL ends both once idle too long, and
    another process takes over; the frozen one, resumed, stops running it."""
    head = (await log.append(150))[-1]
    a = await _follower_process(log.dsn, "a", "--hang-in-batch", "4")
    b: asyncio.subprocess.Process | None = None
    try:
        assert await _next_line(a) == "leading"
        batches = [await _next_line(a) for _ in range(4)]
        a.send_signal(signal.SIGSTOP)
        b = await _follower_process(log.dsn, "b")
        assert await _next_line(b) == "leading"
        await _handled_once_up_to(log, KILLED, head)

        a.send_signal(signal.SIGCONT)
        assert await _next_line(a) == "not leading"
        more = await log.append(60)
        await _handled_once_up_to(log, KILLED, more[-1])
        conn = await asyncpg.connect(log.dsn)
        try:
            by_a = await conn.fetchval(
                "SELECT max(position) FROM followed_events"
                " WHERE follower = $1 AND handled_by = 'a'",
                KILLED,
            )
        finally:
            await conn.close()
        assert by_a == int(batches[3].split()[1]) - 1  # three batches, not the fourth
    finally:
        for process in (a, b):
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
                await process.wait()


EXPIRY = "device_control.command_expiry"


async def _leading(http: aiohttp.ClientSession, server: ServerProcess) -> bool:
    async with http.get(server.metrics_url) as reply:
        text = await reply.text()
    return _sample(text, "homeserver_follower_leading", follower=EXPIRY) == 1


async def _device_room(http: aiohttp.ClientSession, base: str) -> tuple[str, str]:
    """(the owner's access token, the room) of a device that published its capabilities."""
    owner = await register(http, base, "owner")
    created = await call(
        http,
        "POST",
        f"{base}/_linkchat/v1/devices",
        owner["access_token"],
        {"display_name": "kiosk"},
    )
    login = {"type": "m.login.token", "token": created["login_token"]}
    device = await call(http, "POST", f"{base}{V3}/login", body=login)
    room = created["room_id"]
    await call(
        http,
        "PUT",
        f"{base}{V3}/rooms/{room}/state/com.linkchat.device.capabilities",
        device["access_token"],
        DEVICE_CAPABILITIES,
    )
    return owner["access_token"], room


async def _expiries(dsn: str) -> tuple[int, int]:
    """(expiry events in the log, commands they expired)."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS events,"
            " count(DISTINCT json::jsonb -> 'content' -> 'm.relates_to' ->> 'event_id') AS commands"
            " FROM events WHERE type = $1",
            EXPIRED,
        )
    finally:
        await conn.close()
    return int(row["events"]), int(row["commands"])


async def test_commands_expire_exactly_once_when_the_process_expiring_them_is_killed(
    fresh_dsn: str, redis_url: str, tmp_path: Path
) -> None:
    # No catch-up in the test's time: a learns of commands sent through b by the bus.
    config = {
        "redis": {"url": redis_url},
        "followers": {"catch_up_seconds": 3600, "lease_check_seconds": 1},
    }
    count = 150
    a = ServerProcess(tmp_path, fresh_dsn, **config)
    b: ServerProcess | None = None
    try:
        a.wait_ready()
        async with aiohttp.ClientSession() as http:
            await until(lambda: _leading(http, a), "a to run command expiry")
            b = ServerProcess(tmp_path, fresh_dsn, **config)
            b.wait_ready()
            token, room = await _device_room(http, b.base_url)
            # Deadlines spread over three seconds: a is still at work when it dies.
            for n in range(count):
                body = {"action": "beep", "args": {}, "ttl_ms": 3000 + 20 * n}
                url = f"{b.base_url}{V3}/rooms/{room}/send/{COMMAND}/c{n}"
                await call(http, "PUT", url, token, body)

            async def started() -> bool:
                return (await _expiries(fresh_dsn))[0] > 0

            await until(started, "a to expire the first commands")
            a.kill()
            done_by_a, _ = await _expiries(fresh_dsn)
            assert done_by_a < count  # the kill landed in the middle of the work

            async def finished() -> bool:
                return (await _expiries(fresh_dsn))[1] == count

            await until(finished, "b to expire the rest", timeout_s=60)
            assert await _leading(http, b)
        assert await _expiries(fresh_dsn) == (count, count)
    finally:
        a.stop()  # after the kill: only closes its log
        if b is not None:
            assert b.stop() == 0
