"""Old notifications are pruned: GET /notifications forgets them, the badges do not.

And a sync right after a push rule change waits for the push follower to
reach it (woken by the follower, log/positions.py), so the events before the
change count by the rules of then.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from homeserver.alarm import Alarm
from homeserver.api.app_keys import POOL
from homeserver.bus.local import LocalBus
from homeserver.log.positions import FollowerPositions
from homeserver.push.pruning import DAY_MS, NotificationPruner
from homeserver.store import push as push_store
from tests.matrix import MatrixClient, User


def _counts(body: dict[str, Any], room: str) -> tuple[int, int]:
    unread = body["rooms"]["join"][room]["unread_notifications"]
    return unread["notification_count"], unread["highlight_count"]


async def _listed(hs: MatrixClient, user: User) -> list[str]:
    listed = (await hs.ok("GET", "notifications", user=user))["notifications"]
    return [item["event"]["event_id"] for item in listed]


async def _wait_listed(hs: MatrixClient, user: User, event_id: str) -> None:
    async def listed() -> bool:
        return event_id in await _listed(hs, user)

    await hs.eventually(listed)


def _pruner(hs: MatrixClient, days_later: float) -> NotificationPruner:
    """A pruner whose clock reads `days_later` days from now."""
    return NotificationPruner(
        hs.app[POOL], kept_days=30, clock=lambda: time.time() + days_later * DAY_MS / 1000
    )


async def _backlog_rows(hs: MatrixClient, user: User) -> int:
    async with hs.app[POOL].acquire() as conn:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM push_notification_backlog WHERE user_id = $1", user.user_id
            )
        )


async def test_notifications_older_than_kept_leave_the_list_but_unread_ones_still_count(
    hs: MatrixClient,
) -> None:
    alice, bob, room = await hs.room_of_two()
    await hs.join(await hs.register(), room)  # three members: every message notifies
    read = await hs.send(alice, room, {"msgtype": "m.text", "body": "read this"})
    await hs.ok("POST", f"rooms/{room}/receipt/m.read/{read}", {}, user=bob)
    await hs.send(alice, room, {"msgtype": "m.text", "body": f"hey {bob.user_id}"})
    last = await hs.send(alice, room, {"msgtype": "m.text", "body": "and this"})
    await _wait_listed(hs, bob, last)
    assert _counts(await hs.sync(bob), room) == (2, 1)

    # (The tests of a run share a database: other tests' rows are pruned too.)
    await _pruner(hs, 29).prune()  # not old enough yet
    assert len(await _listed(hs, bob)) == 3
    deleted, _ = await _pruner(hs, 31).prune()
    assert deleted >= 6  # bob's three and the third member's
    assert await _listed(hs, bob) == []
    # The two unread, a mention among them, still count: in /sync and in a push's badge.
    assert _counts(await hs.sync(bob), room) == (2, 1)
    async with hs.app[POOL].acquire() as conn:
        assert await push_store.unread_totals(conn, [bob.user_id]) == {bob.user_id: 2}

    newer = await hs.send(alice, room, {"msgtype": "m.text", "body": "newer"})
    await _wait_listed(hs, bob, newer)
    assert _counts(await hs.sync(bob), room) == (3, 1)
    # Reading the newest reads what was folded away too; the next round forgets it.
    await hs.ok("POST", f"rooms/{room}/receipt/m.read/{newer}", {}, user=bob)
    assert _counts(await hs.sync(bob), room) == (0, 0)
    assert await _backlog_rows(hs, bob) == 1
    await _pruner(hs, 31).prune()
    assert await _backlog_rows(hs, bob) == 0
    assert _counts(await hs.sync(bob), room) == (0, 0)


async def test_pruning_twice_adds_up_what_is_still_unread(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    await hs.join(await hs.register(), room)
    first = await hs.send(alice, room, {"msgtype": "m.text", "body": "one"})
    await _wait_listed(hs, bob, first)
    await _pruner(hs, 31).prune()
    second = await hs.send(alice, room, {"msgtype": "m.text", "body": "two"})
    await _wait_listed(hs, bob, second)
    await _pruner(hs, 31).prune()
    assert await _listed(hs, bob) == []
    assert _counts(await hs.sync(bob), room) == (2, 0)


async def test_a_sync_after_a_rule_change_counts_earlier_events_by_the_earlier_rules(
    hs: MatrixClient,
) -> None:
    alice, bob, room = await hs.room_of_two()
    await hs.join(await hs.register(), room)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "before the mute"})
    await hs.ok("PUT", f"pushrules/global/room/{room}", {"actions": ["dont_notify"]}, user=bob)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "after the mute"})
    # Built from the database at once: the follower may not have reached the mute yet.
    assert _counts(await hs.sync(bob), room) == (1, 0)


async def test_a_waiter_wakes_when_the_follower_records_its_position() -> None:
    positions = FollowerPositions(LocalBus())
    with positions.watching("push", 10) as reached:
        positions.recorded("other", 50)
        positions.recorded("push", 9)
        assert not await reached.sleep(0)
        woken = asyncio.create_task(reached.sleep(60))
        positions.recorded("push", 10)
        assert await asyncio.wait_for(woken, 60)
    # Heard of before: rung from the start.
    with positions.watching("push", 5) as reached:
        assert await reached.sleep(0)
    await positions.close()


async def test_a_position_from_another_process_wakes_the_waiter() -> None:
    bus = LocalBus()
    here = FollowerPositions(bus)
    FollowerPositions(bus).recorded("push", 7)  # another process's, on the shared bus
    await asyncio.sleep(0)
    with here.watching("push", 7) as reached:
        assert isinstance(reached, Alarm)
        assert await reached.sleep(0)
