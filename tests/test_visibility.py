"""History visibility rules (spec "Room History Visibility", server behaviour), as pure
functions of the user's membership changes and the room's visibility changes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from homeserver.events.model import Event
from homeserver.rooms.visibility import (
    HistoryAccess,
    may_see,
    setting_of,
)

ALICE = "@alice:hs"


def _state(position: int, event_type: str, state_key: str, content: dict[str, str]) -> Event:
    pdu = {
        "room_id": "!r:hs",
        "sender": ALICE,
        "type": event_type,
        "state_key": state_key,
        "content": content,
        "origin_server_ts": 0,
        "depth": position,
        "prev_events": [],
    }
    return Event.from_pdu(f"${position}", pdu, position)


def _member(position: int, membership: str, user_id: str = ALICE) -> Event:
    return _state(position, "m.room.member", user_id, {"membership": membership})


def _setting(position: int, value: str) -> Event:
    return _state(position, "m.room.history_visibility", "", {"history_visibility": value})


def _access(*events: Event) -> HistoryAccess:
    return HistoryAccess.from_events(ALICE, events)


def _visible(access: HistoryAccess, positions: range) -> list[int]:
    return [p for p in positions if access.allows_position(p)]


def test_unknown_or_missing_setting_counts_as_shared() -> None:
    assert setting_of({}) == "shared"
    assert setting_of({"history_visibility": "everyone"}) == "shared"
    assert setting_of({"history_visibility": "joined"}) == "joined"


def test_the_spec_rules_one_by_one() -> None:
    assert may_see("world_readable", None, joined_later=False)
    assert may_see("joined", "join", joined_later=False)
    assert may_see("shared", "leave", joined_later=True)
    assert not may_see("shared", None, joined_later=False)
    assert may_see("invited", "invite", joined_later=False)
    assert not may_see("joined", "invite", joined_later=True)
    assert not may_see("invited", "leave", joined_later=True)


def test_shared_history_is_visible_to_a_later_joiner() -> None:
    access = _access(_setting(2, "shared"), _member(10, "join"))
    assert _visible(access, range(1, 15)) == list(range(1, 15))


def test_joined_history_starts_at_the_join() -> None:
    access = _access(_setting(1, "joined"), _member(10, "join"))
    assert _visible(access, range(2, 15)) == list(range(10, 15))


def test_events_before_the_first_visibility_setting_count_as_shared() -> None:
    access = _access(_setting(3, "joined"), _member(10, "join"))
    # 1 and 2 were shared; 3 changed shared to joined, so shows as well.
    assert _visible(access, range(1, 15)) == [1, 2, 3, *range(10, 15)]


def test_invited_history_starts_at_the_invite() -> None:
    access = _access(_setting(1, "invited"), _member(6, "invite"), _member(10, "join"))
    assert _visible(access, range(2, 15)) == list(range(6, 15))


def test_joined_visibility_hides_ones_own_invite_but_shows_the_join() -> None:
    access = _access(_setting(1, "joined"), _member(6, "invite"), _member(10, "join"))
    assert not access.allows_position(6)
    assert access.allows_position(10)


def test_nothing_after_leaving_is_visible_unless_the_room_is_world_readable() -> None:
    access = _access(_member(5, "join"), _member(10, "leave"), _setting(12, "world_readable"))
    # 11 was sent after the leave while shared; 12 on, anyone may see (rule 1), so one
    # who left does too.
    assert _visible(access, range(1, 15)) == [*range(1, 11), 12, 13, 14]


def test_one_who_forgot_the_room_sees_it_as_a_stranger() -> None:
    access = _access(
        _member(3, "join"),
        _setting(5, "world_readable"),
        _setting(8, "shared"),
        _member(9, "leave"),
    ).as_stranger()
    assert access.membership is None
    assert _visible(access, range(1, 12)) == [5, 6, 7, 8]


def test_a_kicked_or_banned_user_sees_their_removal_and_nothing_after() -> None:
    access = _access(_member(3, "join"), _member(8, "ban"))
    assert _visible(access, range(1, 12)) == list(range(1, 9))


def test_rejoining_under_shared_uncovers_the_time_away() -> None:
    access = _access(_member(3, "join"), _member(6, "leave"), _member(10, "join"))
    assert _visible(access, range(1, 13)) == list(range(1, 13))


def test_rejoining_under_joined_keeps_the_time_away_hidden() -> None:
    access = _access(
        _setting(1, "joined"), _member(3, "join"), _member(6, "leave"), _member(10, "join")
    )
    assert _visible(access, range(2, 13)) == [3, 4, 5, 6, 10, 11, 12]


def test_never_member_sees_only_world_readable_stretches() -> None:
    access = _access(
        _setting(1, "world_readable"), _setting(5, "joined"), _setting(9, "world_readable")
    )
    # The visibility events themselves show if the setting before or after allows.
    assert _visible(access, range(1, 12)) == [1, 2, 3, 4, 5, 9, 10, 11]


def test_never_member_of_a_shared_room_sees_nothing() -> None:
    assert _visible(_access(), range(1, 10)) == []


def test_other_users_membership_does_not_count() -> None:
    access = HistoryAccess.from_events(
        ALICE, [_setting(1, "joined"), _member(4, "join", user_id="@bob:hs")]
    )
    assert _visible(access, range(1, 8)) == []


def test_visible_ranges_merge_and_skip_hidden_stretches() -> None:
    access = _access(
        _setting(1, "joined"), _member(3, "join"), _member(6, "leave"), _member(10, "join")
    )
    # The setting itself (1) shows: before it, the room was shared.
    assert access.visible_ranges(1, 12) == [(1, 1), (3, 6), (10, 12)]
    assert access.visible_ranges(4, 11) == [(4, 6), (10, 11)]
    assert access.visible_ranges(7, 9) == []
    assert access.visible_ranges(5, 4) == []


_change = st.one_of(
    st.tuples(st.just("member"), st.sampled_from(["join", "invite", "leave", "ban", "knock"])),
    st.tuples(
        st.just("setting"), st.sampled_from(["world_readable", "shared", "invited", "joined"])
    ),
)


@given(
    changes=st.dictionaries(st.integers(1, 40), _change, max_size=8),
    window=st.tuples(st.integers(1, 45), st.integers(0, 45)),
)
def test_visible_ranges_agree_with_deciding_each_position(
    changes: dict[int, tuple[str, str]], window: tuple[int, int]
) -> None:
    events = [
        _member(p, value) if kind == "member" else _setting(p, value)
        for p, (kind, value) in changes.items()
    ]
    access = _access(*events)
    lowest, highest = window
    from_ranges = [
        p for first, last in access.visible_ranges(lowest, highest) for p in range(first, last + 1)
    ]
    assert from_ranges == _visible(access, range(lowest, highest + 1))


def test_ones_own_leave_is_always_visible() -> None:
    # A rejected invite to a `joined` room, and a kick after leaving history behind.
    access = _access(_setting(1, "joined"), _member(6, "invite"), _member(9, "leave"))
    assert _visible(access, range(2, 12)) == [9]
    rejoined = _access(_setting(1, "joined"), _member(3, "join"), _member(5, "leave"))
    assert _visible(rejoined, range(2, 8)) == [3, 4, 5]
