"""The deadlines the expiry followers sleep on (log/timers.py): no database needed."""

from __future__ import annotations

from homeserver.log.timers import Deadlines


def test_due_watches_come_out_earliest_first_and_at_most_as_many_as_asked() -> None:
    deadlines: Deadlines[str, str] = Deadlines()
    for due, key in ((30, "c"), (10, "a"), (20, "b"), (40, "d")):
        deadlines.watch(due, key, key.upper())
    assert deadlines.pop_due(35, at_most=2) == [(10, "a", "A"), (20, "b", "B")]
    assert deadlines.pop_due(35, at_most=2) == [(30, "c", "C")]
    assert deadlines.pop_due(35, at_most=2) == []
    assert deadlines.earliest() == 40 and "d" in deadlines and "a" not in deadlines


def test_watching_a_key_again_replaces_its_deadline_and_forgetting_drops_it() -> None:
    deadlines: Deadlines[str, int] = Deadlines()
    deadlines.watch(10, "mute", 1)
    deadlines.watch(50, "mute", 2)
    deadlines.watch(20, "gone", 3)
    deadlines.forget("gone")
    assert deadlines.pop_due(30, at_most=10) == []
    assert deadlines.get("mute") == 2
    assert deadlines.pop_due(50, at_most=10) == [(50, "mute", 2)]


async def test_only_a_deadline_earlier_than_every_other_rings_the_alarm() -> None:
    deadlines: Deadlines[str, None] = Deadlines()
    deadlines.watch(20, "first", None)
    assert await deadlines.wake.sleep(0)
    deadlines.watch(30, "later", None)
    assert not await deadlines.wake.sleep(0)
    deadlines.watch(10, "earlier", None)
    assert await deadlines.wake.sleep(0)
