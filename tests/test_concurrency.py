"""Concurrent senders: every event stored once, retries idempotent, positions visible in order."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import asyncpg

from tests.conftest import AppFactory
from tests.matrix import MatrixClient, User

SENDERS = 50
MESSAGES_EACH = 20


async def _room_with_senders(hs: MatrixClient, count: int) -> tuple[str, list[User]]:
    owner = await hs.register()
    room = await hs.create_room(owner, preset="public_chat")
    senders = [await hs.register() for _ in range(count)]
    await asyncio.gather(*(hs.join(sender, room) for sender in senders))
    return room, senders


async def _watch_prefix(dsn: str, stop: asyncio.Event) -> list[tuple[int, int]]:
    """Sample (count, max position) until stopped; a gap means a later position committed first."""
    conn = await asyncpg.connect(dsn)
    seen: list[tuple[int, int]] = []
    try:
        while not stop.is_set():
            row = await conn.fetchrow(
                "SELECT count(*) AS n, coalesce(max(stream_position), 0) AS top FROM events"
            )
            seen.append((row["n"], row["top"]))
            await asyncio.sleep(0)
    finally:
        await conn.close()
    return seen


async def test_fifty_concurrent_senders_store_every_message_exactly_once(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    hs = await start_app(dsn=fresh_dsn)
    room, senders = await _room_with_senders(hs, SENDERS)
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch_prefix(fresh_dsn, stop))

    async def send_all(sender: User, index: int) -> list[tuple[str, str]]:
        sent = []
        for n in range(MESSAGES_EACH):
            body = f"{index}:{n}"
            txn = f"txn-{index}-{n}"
            first = await hs.send(sender, room, {"msgtype": "m.text", "body": body}, txn_id=txn)
            sent.append((body, first))
        return sent

    results = await asyncio.gather(*(send_all(s, i) for i, s in enumerate(senders)))
    stop.set()
    samples = await watcher

    conn = await asyncpg.connect(fresh_dsn)
    try:
        rows = await conn.fetch(
            "SELECT event_id, stream_position, json::jsonb -> 'content' ->> 'body' AS body"
            " FROM events WHERE room_id = $1 AND type = 'm.room.message' ORDER BY stream_position",
            room,
        )
        positions = [
            r["stream_position"]
            for r in await conn.fetch("SELECT stream_position FROM events ORDER BY 1")
        ]
    finally:
        await conn.close()

    bodies = [row["body"] for row in rows]
    assert len(bodies) == SENDERS * MESSAGES_EACH
    assert len(set(bodies)) == SENDERS * MESSAGES_EACH
    sent_ids = {event_id for sent in results for _, event_id in sent}
    assert sent_ids == {row["event_id"] for row in rows}
    # Each sender's own messages keep the order it sent them in.
    for index in range(SENDERS):
        mine = [b for b in bodies if b.startswith(f"{index}:")]
        assert mine == [f"{index}:{n}" for n in range(MESSAGES_EACH)]
    # Positions are gap-free, and at every moment what was visible was a prefix.
    assert positions == list(range(1, len(positions) + 1))
    assert samples, "the watcher never sampled"
    assert all(count == top for count, top in samples), "a later position became visible first"


async def test_retried_transaction_ids_return_the_same_event_under_concurrency(
    hs: MatrixClient,
) -> None:
    room, (sender,) = await _room_with_senders(hs, 1)
    txn = "retry-" + secrets.token_hex(4)
    content = {"msgtype": "m.text", "body": "once"}
    ids = await asyncio.gather(*(hs.send(sender, room, content, txn_id=txn) for _ in range(20)))
    assert len(set(ids)) == 1
    messages = await hs.ok("GET", f"rooms/{room}/event/{ids[0]}", user=sender)
    assert messages["unsigned"]["transaction_id"] == txn


async def test_two_server_processes_on_one_database_interleave_without_gaps(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    first = await start_app(dsn=fresh_dsn)
    second = await start_app(dsn=fresh_dsn)
    owner = await first.register()
    room = await first.create_room(owner, preset="public_chat")
    writers = [await first.register() for _ in range(10)]
    for writer in writers:
        await first.join(writer, room)

    async def send_many(server: MatrixClient, writer: User) -> None:
        for n in range(15):
            await server.send(writer, room, {"msgtype": "m.text", "body": str(n)})

    await asyncio.gather(*(send_many(first if i % 2 else second, w) for i, w in enumerate(writers)))
    conn = await asyncpg.connect(fresh_dsn)
    try:
        positions = [
            r[0] for r in await conn.fetch("SELECT stream_position FROM events ORDER BY 1")
        ]
        depths = [
            r[0]
            for r in await conn.fetch(
                "SELECT depth FROM events WHERE room_id = $1 ORDER BY stream_position", room
            )
        ]
    finally:
        await conn.close()
    assert positions == list(range(1, len(positions) + 1))
    # One chain per room even with two writers: depth grows by one each event.
    assert depths == list(range(1, len(depths) + 1))


async def test_a_draft_postgresql_refuses_fails_alone_not_its_whole_batch(hs: MatrixClient) -> None:
    from homeserver.api.app_keys import APPENDER
    from homeserver.errors import MatrixError
    from homeserver.events.model import Draft

    room, (sender,) = await _room_with_senders(hs, 1)
    appender = hs.app[APPENDER]
    good = [
        appender.append(Draft(room, sender.user_id, "m.room.message", {"body": str(n)}))
        for n in range(20)
    ]
    # The type column is PostgreSQL text, which cannot hold U+0000: the insert fails.
    bad = appender.append(Draft(room, sender.user_id, "m.bad\x00type", {}))
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert all(not isinstance(r, BaseException) for r in results[:20]), results[:20]
    assert isinstance(results[20], MatrixError) and results[20].status == 500
    # And the room still works afterwards.
    await hs.send(sender, room)


async def test_a_later_position_cannot_commit_before_an_earlier_one_so_no_reader_skips_it(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    """Force the hazard: a slow writer holds position N+1 uncommitted while another
    process appends. The second append must wait and take N+2 after N+1 commits;
    a reader meanwhile never sees N+2 without N+1."""
    from homeserver.store.events import lock_for_append

    hs = await start_app(dsn=fresh_dsn)
    room, (sender,) = await _room_with_senders(hs, 1)
    slow = await asyncpg.connect(fresh_dsn)
    reader = await asyncpg.connect(fresh_dsn)
    try:
        transaction = slow.transaction()
        await transaction.start()
        held = await lock_for_append(slow) + 1
        await slow.execute(
            "INSERT INTO events (stream_position, event_id, room_id, type, sender,"
            " origin_server_ts, depth, json) VALUES ($1, '$slow', '!slow:localhost',"
            " 'm.room.message', $2, 0, 1, '{}')",
            held,
            sender.user_id,
        )
        fast = asyncio.create_task(hs.send(sender, room, {"msgtype": "m.text", "body": "fast"}))
        seen: list[tuple[int, int]] = []
        for _ in range(20):
            row = await reader.fetchrow(
                "SELECT count(*) AS n, max(stream_position) AS top FROM events"
            )
            seen.append((row["n"], row["top"]))
            await asyncio.sleep(0.05)
        assert not fast.done(), "the later append committed while an earlier one was open"
        await transaction.commit()
        fast_id = await fast
        fast_position = await reader.fetchval(
            "SELECT stream_position FROM events WHERE event_id = $1", fast_id
        )
        assert fast_position == held + 1
        assert all(count == top for count, top in seen), "a reader saw a gap"
        assert all(top < held for _, top in seen), "the uncommitted position was visible"
    finally:
        await slow.close()
        await reader.close()


async def test_a_batch_whose_commit_landed_is_not_written_again_when_the_answer_is_lost(
    hs: MatrixClient,
) -> None:
    """The COMMIT goes through but the reply does not come back (the connection drops,
    or the next batch's lock, sent with it, fails): the batch is in the log, and
    retrying it would write every event without a transaction ID twice."""
    from homeserver.api.app_keys import APPENDER, POOL
    from homeserver.events.model import Draft
    from homeserver.store.events import AppendSession

    class LostReply(AppendSession):
        failures = 1

        async def commit(self, then_lock: bool) -> None:
            await super().commit(then_lock)
            if LostReply.failures:
                LostReply.failures -= 1
                raise ConnectionResetError("reply lost")

    room, (sender,) = await _room_with_senders(hs, 1)
    appender = hs.app[APPENDER]
    await appender._session.close()
    appender._session = LostReply(hs.app[POOL])
    event = await appender.append(Draft(room, sender.user_id, "m.room.message", {"body": "once"}))
    assert LostReply.failures == 0
    conn = await hs.app[POOL].acquire()
    try:
        copies = await conn.fetchval(
            "SELECT count(*) FROM events WHERE room_id = $1 AND json::jsonb -> 'content' ->> 'body'"
            " = 'once'",
            room,
        )
    finally:
        await hs.app[POOL].release(conn)
    assert copies == 1
    assert event.content == {"body": "once"}
    # The appender goes on writing.
    await hs.send(sender, room)


async def test_a_batch_is_answered_at_its_commit_while_another_process_waits_for_the_lock(
    hs: MatrixClient, run_dsn: str
) -> None:
    """Another worker (or replica) asks for the append lock while a batch holds it, and
    a second batch is already queued here. The first batch's sender is answered at its
    COMMIT, not after the other process's batch; the second waits its turn."""
    from homeserver.api.app_keys import APPENDER, POOL
    from homeserver.events.model import Draft, Event
    from homeserver.store.events import APPEND_LOCK, AppendSession

    room, (sender,) = await _room_with_senders(hs, 1)
    appender = hs.app[APPENDER]
    rival = await asyncpg.connect(run_dsn)
    watcher = await asyncpg.connect(run_dsn)
    second: list[asyncio.Task[Event]] = []
    rival_has_it: list[asyncio.Task[str]] = []

    def draft(body: str) -> Draft:
        return Draft(room, sender.user_id, "m.room.message", {"body": body})

    class Contended(AppendSession):
        async def begin(self) -> asyncpg.Connection:
            conn = await super().begin()
            if not second:
                # While this batch holds the lock: the next batch queues here, and the
                # rival process asks for the lock.
                second.append(asyncio.create_task(appender.append(draft("second"))))
                rival_has_it.append(
                    asyncio.create_task(rival.execute("SELECT pg_advisory_lock($1)", APPEND_LOCK))
                )
                for _ in range(500):
                    waiting = await watcher.fetchval(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                        " AND NOT granted AND pid = $1",
                        rival.get_server_pid(),
                    )
                    if waiting:
                        break
                    await asyncio.sleep(0.01)
                else:
                    raise AssertionError("the rival never asked for the lock")
            return conn

    await appender._session.close()
    appender._session = Contended(hs.app[POOL])
    try:
        first = await asyncio.wait_for(appender.append(draft("first")), 10)
        await asyncio.wait_for(rival_has_it[0], 10)
        # The rival holds the lock now; the first send was answered all the same.
        assert first.content == {"body": "first"}
        await asyncio.sleep(0.2)
        assert not second[0].done(), "the second batch did not wait for the lock"
    finally:
        await rival.execute("SELECT pg_advisory_unlock($1)", APPEND_LOCK)
    later = await asyncio.wait_for(second[0], 10)
    assert later.stream_position > first.stream_position
    await rival.close()
    await watcher.close()
    # The appender goes on writing, taking the lock as usual.
    await hs.send(sender, room)


async def test_a_state_change_made_by_another_process_is_enforced_from_its_events(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    """Two processes take turns appending to one room. What the other process appended
    reaches this one over the bus and is folded into this appender's cached room state,
    which then equals the room's state in the database; a power-level change made there
    is enforced here."""
    from homeserver.api.app_keys import APPENDER, POOL
    from homeserver.store.chains import load_state

    first = await start_app(dsn=fresh_dsn, bus="postgres")
    second = await start_app(dsn=fresh_dsn, bus="postgres")
    owner = await first.register()
    room = await first.create_room(owner, preset="public_chat")
    member = await first.register()
    await first.join(member, room)
    await second.send(member, room, {"msgtype": "m.text", "body": "cached here"})
    appender = second.app[APPENDER]
    levels = await first.ok("GET", f"rooms/{room}/state/m.room.power_levels", user=owner)
    levels["events_default"] = 50
    changed = await first.ok("PUT", f"rooms/{room}/state/m.room.power_levels", levels, user=owner)
    for _ in range(500):
        cached = appender._states.get(room)
        if cached is not None and cached.head is not None:
            if cached.head.event_id == changed["event_id"]:
                break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the other process's events never reached this appender's cache")
    async with second.app[POOL].acquire() as conn:
        assert cached == await load_state(conn, room, cached.head)
    refused = await second.request(
        "PUT",
        f"rooms/{room}/send/m.room.message/after-change",
        {"msgtype": "m.text", "body": "not any more"},
        user=member,
    )
    assert (refused.status, refused.errcode) == (403, "M_FORBIDDEN")


async def test_a_batch_committed_by_another_process_arrives_with_its_bus_message(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    """A send through one process wakes a long-poll held by another with the event
    and its transaction ID, taken from the bus message rather than read back from
    the log; a batch too large to carry is read from the log and arrives all the same."""
    from homeserver.api.sync import SYNC

    first = await start_app(dsn=fresh_dsn, bus="postgres")
    second = await start_app(dsn=fresh_dsn, bus="postgres")
    alice = await first.register()
    room = await first.create_room(alice)
    recent = second.app[SYNC]._recent
    since = (await second.sync(alice))["next_batch"]

    async def sent_through_first(body: str, txn_id: str) -> dict[str, Any]:
        nonlocal since
        poll = asyncio.create_task(second.sync(alice, since, wait_ms=10_000))
        await asyncio.sleep(0.2)
        await first.send(alice, room, {"msgtype": "m.text", "body": body}, txn_id=txn_id)
        answer = await asyncio.wait_for(poll, 15)
        since = answer["next_batch"]
        (event,) = answer["rooms"]["join"][room]["timeline"]["events"]
        return dict(event)

    read_before, received_before = recent.catch_ups, recent.received
    event = await sent_through_first("carried", "t-carried")
    assert event["content"]["body"] == "carried"
    assert event["unsigned"]["transaction_id"] == "t-carried"
    assert recent.received > received_before
    assert recent.catch_ups == read_before, "the other process read the log back"

    big = "x" * 60_000
    event = await sent_through_first(big, "t-big")
    assert event["content"]["body"] == big
    assert event["unsigned"]["transaction_id"] == "t-big"
    assert recent.catch_ups > read_before
