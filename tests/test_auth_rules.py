"""Room authorization rules (room version 11, and what other versions change) and power
levels, without a database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homeserver.errors import MatrixError
from homeserver.events.model import Draft, Event
from homeserver.projections.room_state import RoomState, apply
from homeserver.rooms.auth import authorize
from homeserver.rooms.power_levels import PowerLevels

ROOM = "!room:example.org"
ALICE = "@alice:example.org"  # creator, level 100
MOD = "@mod:example.org"  # level 50
BOB = "@bob:example.org"  # level 0
CAROL = "@carol:example.org"
EVE = "@eve:elsewhere.example"


class Room:
    """A room's state built by folding events; `append` authorizes each one first."""

    def __init__(self, room_id: str = ROOM) -> None:
        self.state = RoomState(room_id)
        self._count = 0

    def draft(
        self, event_type: str, sender: str, content: dict[str, Any], state_key: str | None = None
    ) -> Draft:
        return Draft(self.state.room_id, sender, event_type, content, state_key)

    def check(
        self,
        event_type: str,
        sender: str,
        content: dict[str, Any],
        state_key: str | None = None,
        redacted_sender: str | None = None,
    ) -> None:
        authorize(self.state, self.draft(event_type, sender, content, state_key), redacted_sender)

    def append(
        self, event_type: str, sender: str, content: dict[str, Any], state_key: str | None = None
    ) -> Event:
        self.check(event_type, sender, content, state_key)
        return self.force(event_type, sender, content, state_key)

    def force(
        self, event_type: str, sender: str, content: dict[str, Any], state_key: str | None = None
    ) -> Event:
        """Fold an event in without authorizing it, to set up unusual states."""
        self._count += 1
        head = self.state.head
        event = Event(
            event_id=f"$event{self._count}",
            room_id=self.state.room_id,
            sender=sender,
            type=event_type,
            state_key=state_key,
            content=content,
            origin_server_ts=1_700_000_000_000 + self._count,
            depth=self._count,
            prev_events=(head.event_id,) if head is not None else (),
            stream_position=self._count,
            pdu={},
        )
        self.state = apply(self.state, event)
        return event

    def member(self, user: str, membership: str, sender: str | None = None) -> Event:
        return self.append("m.room.member", sender or user, {"membership": membership}, user)

    def check_member(
        self, user: str, membership: str, sender: str | None = None, **extra: Any
    ) -> None:
        self.check("m.room.member", sender or user, {"membership": membership, **extra}, user)


@contextmanager
def refused(reason_part: str) -> Iterator[None]:
    """Expect a 403 M_FORBIDDEN whose reason contains `reason_part`."""
    with pytest.raises(MatrixError, match=re.escape(reason_part)) as error:
        yield
    assert (error.value.status, error.value.errcode) == (403, "M_FORBIDDEN")


def created_room(join_rule: str = "invite", **power_levels: Any) -> Room:
    room = Room()
    room.append("m.room.create", ALICE, {"room_version": "11"}, "")
    room.member(ALICE, "join")
    content: dict[str, Any] = {"users": {ALICE: 100, MOD: 50}}
    content.update(power_levels)
    room.append("m.room.power_levels", ALICE, content, "")
    room.append("m.room.join_rules", ALICE, {"join_rule": join_rule}, "")
    return room


def with_members(*users: str, join_rule: str = "invite", **power_levels: Any) -> Room:
    room = created_room(join_rule, **power_levels)
    for user in users:
        room.member(user, "invite", sender=ALICE)
        room.member(user, "join")
    return room


# --- room creation --------------------------------------------------------------------------


def test_room_is_created_by_its_first_event() -> None:
    room = Room()
    room.append("m.room.create", ALICE, {"room_version": "11"}, "")
    assert room.state.creator() == ALICE


def test_room_cannot_be_created_twice() -> None:
    room = created_room()
    with refused("already exists"):
        room.check("m.room.create", ALICE, {"room_version": "11"}, "")


def test_nothing_can_be_sent_before_the_room_is_created() -> None:
    room = Room()
    with refused("does not exist"):
        room.check_member(ALICE, "join")
    with refused("does not exist"):
        room.check("m.room.message", ALICE, {"body": "hi"})


def test_room_can_only_be_created_by_a_user_of_its_server() -> None:
    with refused("server"):
        Room().check("m.room.create", EVE, {}, "")


def test_room_version_unknown_to_the_spec_is_refused() -> None:
    with refused("not supported"):
        Room().check("m.room.create", ALICE, {"room_version": "13"}, "")
    with refused("not supported"):
        Room().check("m.room.create", ALICE, {"room_version": 11}, "")


def test_room_creation_event_needs_an_empty_state_key() -> None:
    with refused("empty state key"):
        Room().check("m.room.create", ALICE, {}, "x")
    with refused("empty state key"):
        Room().check("m.room.create", ALICE, {})


# --- joining --------------------------------------------------------------------------------


def test_creator_joins_right_after_creating_the_room() -> None:
    room = Room()
    room.append("m.room.create", ALICE, {"room_version": "11"}, "")
    room.member(ALICE, "join")
    assert room.state.membership(ALICE) == "join"


def test_nobody_but_the_creator_may_be_first_to_join() -> None:
    room = Room()
    room.append("m.room.create", ALICE, {"room_version": "11"}, "")
    with refused("invitation"):
        room.check_member(BOB, "join")


def test_invited_user_can_join_invite_only_room() -> None:
    room = created_room()
    room.member(BOB, "invite", sender=ALICE)
    room.member(BOB, "join")
    assert room.state.membership(BOB) == "join"


def test_uninvited_user_cannot_join_invite_only_room() -> None:
    room = created_room()
    with refused("invitation"):
        room.check_member(BOB, "join")


def test_anyone_can_join_a_public_room() -> None:
    room = created_room("public")
    room.member(BOB, "join")
    assert room.state.membership(BOB) == "join"


def test_user_who_left_a_public_room_can_come_back() -> None:
    room = created_room("public")
    room.member(BOB, "join")
    room.member(BOB, "leave")
    room.member(BOB, "join")


def test_user_cannot_join_on_behalf_of_someone_else() -> None:
    room = created_room("public")
    with refused("someone else"):
        room.check_member(BOB, "join", sender=ALICE)


def test_banned_user_cannot_rejoin() -> None:
    room = with_members(BOB, join_rule="public")
    room.member(BOB, "ban", sender=ALICE)
    with refused("banned"):
        room.check_member(BOB, "join")


def test_member_can_change_their_profile() -> None:
    room = with_members(BOB)
    room.append("m.room.member", BOB, {"membership": "join", "displayname": "Bobby"}, BOB)
    assert room.state.content("m.room.member", BOB) == {
        "membership": "join",
        "displayname": "Bobby",
    }


def test_knocker_cannot_join_before_being_invited() -> None:
    room = created_room("knock")
    room.member(BOB, "knock")
    with refused("invitation"):
        room.check_member(BOB, "join")
    room.member(BOB, "invite", sender=ALICE)
    room.member(BOB, "join")


def test_restricted_room_admits_a_join_vouched_for_by_a_member_who_may_invite() -> None:
    room = created_room("restricted")
    room.check_member(BOB, "join", join_authorised_via_users_server=ALICE)


def test_restricted_room_refuses_a_join_vouched_for_by_someone_who_may_not_invite() -> None:
    room = with_members(CAROL, join_rule="restricted", invite=50)
    with refused("without an invitation"):
        room.check_member(BOB, "join")
    with refused("without an invitation"):
        room.check_member(BOB, "join", join_authorised_via_users_server=CAROL)
    with refused("without an invitation"):
        room.check_member(BOB, "join", join_authorised_via_users_server=MOD)  # not joined


def test_restricted_room_admits_invited_users() -> None:
    room = created_room("knock_restricted")
    room.member(BOB, "invite", sender=ALICE)
    room.member(BOB, "join")


def test_private_join_rule_admits_nobody() -> None:
    room = created_room("private")
    room.member(BOB, "invite", sender=ALICE)
    with refused("private"):
        room.check_member(BOB, "join")


def test_users_of_other_servers_cannot_enter_a_room_closed_to_them() -> None:
    room = Room()
    room.append("m.room.create", ALICE, {"room_version": "11", "m.federate": False}, "")
    room.member(ALICE, "join")
    room.append("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
    room.member(BOB, "join")
    with refused("other servers"):
        room.check_member(EVE, "join")


# --- invites --------------------------------------------------------------------------------


def test_member_can_invite_when_invite_level_allows() -> None:
    room = with_members(BOB)
    room.member(CAROL, "invite", sender=BOB)
    assert room.state.membership(CAROL) == "invite"


def test_invite_needs_the_invite_level() -> None:
    room = with_members(BOB, invite=50)
    with refused("power level 50 to invite"):
        room.check_member(CAROL, "invite", sender=BOB)
    room.member(MOD, "invite", sender=ALICE)
    room.member(MOD, "join")
    room.member(CAROL, "invite", sender=MOD)


def test_outsider_cannot_invite() -> None:
    room = created_room()
    room.member(BOB, "invite", sender=ALICE)
    with refused("must be in the room"):
        room.check_member(CAROL, "invite", sender=BOB)


def test_joined_or_banned_users_cannot_be_invited() -> None:
    room = with_members(BOB)
    with refused("already in the room"):
        room.check_member(BOB, "invite", sender=ALICE)
    room.member(BOB, "ban", sender=ALICE)
    with refused("banned"):
        room.check_member(BOB, "invite", sender=ALICE)


def test_invitation_can_be_repeated_and_can_answer_a_knock() -> None:
    room = created_room("knock")
    room.member(BOB, "invite", sender=ALICE)
    room.member(BOB, "invite", sender=ALICE)
    room.member(CAROL, "knock")
    room.member(CAROL, "invite", sender=ALICE)


def test_third_party_invites_are_refused() -> None:
    room = with_members(BOB)
    signed = {"mxid": CAROL, "token": "abc", "signatures": {}}
    with refused("Third-party"):
        room.check_member(CAROL, "invite", sender=ALICE, third_party_invite={"signed": signed})
    with refused("Third-party"):
        room.check("m.room.third_party_invite", ALICE, {"public_key": "x"}, "abc")


# --- leaving, kicking, banning --------------------------------------------------------------


def test_member_can_leave() -> None:
    room = with_members(BOB)
    room.member(BOB, "leave")
    assert room.state.membership(BOB) == "leave"


def test_invited_user_can_decline_the_invitation() -> None:
    room = created_room()
    room.member(BOB, "invite", sender=ALICE)
    room.member(BOB, "leave")


def test_knocker_can_withdraw_the_knock() -> None:
    room = created_room("knock")
    room.member(BOB, "knock")
    room.member(BOB, "leave")


def test_user_not_in_the_room_cannot_leave_it() -> None:
    room = with_members(BOB)
    room.member(BOB, "leave")
    with refused("not in this room"):
        room.check_member(BOB, "leave")
    with refused("not in this room"):
        room.check_member(CAROL, "leave")


def test_banned_user_cannot_unban_themselves_by_leaving() -> None:
    room = with_members(BOB)
    room.member(BOB, "ban", sender=ALICE)
    with refused("cannot unban yourself"):
        room.check_member(BOB, "leave")


def test_moderator_can_kick_a_user_with_a_lower_level() -> None:
    room = with_members(MOD, BOB)
    room.member(BOB, "leave", sender=MOD)
    assert room.state.membership(BOB) == "leave"


def test_nobody_can_kick_a_user_with_an_equal_or_higher_level() -> None:
    room = with_members(MOD, BOB, users={ALICE: 100, MOD: 50, BOB: 50})
    with refused("not below yours"):
        room.check_member(BOB, "leave", sender=MOD)
    with refused("not below yours"):
        room.check_member(ALICE, "leave", sender=MOD)


def test_kick_needs_the_kick_level() -> None:
    room = with_members(BOB, CAROL, users={ALICE: 100, BOB: 10})
    with refused("power level 50 to kick"):
        room.check_member(CAROL, "leave", sender=BOB)


def test_kick_level_can_be_lowered() -> None:
    room = with_members(BOB, CAROL, users={ALICE: 100, BOB: 10}, kick=5)
    room.member(CAROL, "leave", sender=BOB)


def test_outsider_cannot_kick() -> None:
    room = with_members(BOB)
    room.member(MOD, "invite", sender=ALICE)
    with refused("must be in the room"):
        room.check_member(BOB, "leave", sender=MOD)


def test_moderator_can_ban_and_unban_a_user_with_a_lower_level() -> None:
    room = with_members(MOD, BOB)
    room.member(BOB, "ban", sender=MOD)
    assert room.state.membership(BOB) == "ban"
    room.member(BOB, "leave", sender=MOD)
    assert room.state.membership(BOB) == "leave"


def test_user_not_in_the_room_can_be_banned_preemptively() -> None:
    room = with_members(MOD)
    room.member(CAROL, "ban", sender=MOD)


def test_ban_needs_the_ban_level() -> None:
    room = with_members(BOB, CAROL, users={ALICE: 100, BOB: 49})
    with refused("power level 50 to ban"):
        room.check_member(CAROL, "ban", sender=BOB)


def test_nobody_can_ban_a_user_with_an_equal_or_higher_level() -> None:
    room = with_members(MOD, users={ALICE: 100, MOD: 100})
    with refused("not below yours"):
        room.check_member(ALICE, "ban", sender=MOD)
    with refused("not below yours"):
        room.check_member(MOD, "ban", sender=MOD)


def test_outsider_cannot_ban() -> None:
    room = with_members(BOB)
    room.member(MOD, "invite", sender=ALICE)
    with refused("must be in the room"):
        room.check_member(BOB, "ban", sender=MOD)


def test_unban_needs_the_ban_level_even_when_kick_level_is_met() -> None:
    room = with_members(MOD, BOB, ban=100)
    room.member(BOB, "ban", sender=ALICE)
    with refused("to unban"):
        room.check_member(BOB, "leave", sender=MOD)
    room.member(BOB, "leave", sender=ALICE)


# --- knocking -------------------------------------------------------------------------------


def test_user_can_knock_on_a_knock_room() -> None:
    room = created_room("knock")
    room.member(BOB, "knock")
    assert room.state.membership(BOB) == "knock"


def test_knock_is_refused_when_the_room_does_not_accept_knocks() -> None:
    for rule in ("invite", "public", "restricted"):
        room = created_room(rule)
        with refused("does not accept knocks"):
            room.check_member(BOB, "knock")


def test_knock_restricted_room_accepts_knocks() -> None:
    room = created_room("knock_restricted")
    room.member(BOB, "knock")


def test_nobody_can_knock_for_someone_else() -> None:
    room = created_room("knock")
    with refused("on behalf"):
        room.check_member(BOB, "knock", sender=ALICE)


def test_banned_invited_or_joined_users_cannot_knock() -> None:
    room = with_members(BOB, join_rule="knock")
    with refused("already in the room"):
        room.check_member(BOB, "knock")
    room.member(CAROL, "invite", sender=ALICE)
    with refused("already invited"):
        room.check_member(CAROL, "knock")
    room.member(BOB, "ban", sender=ALICE)
    with refused("banned"):
        room.check_member(BOB, "knock")


# --- malformed membership events ------------------------------------------------------------


def test_membership_event_without_membership_or_state_key_is_refused() -> None:
    room = created_room("public")
    with refused("needs a state key and a membership"):
        room.check("m.room.member", BOB, {}, BOB)
    with refused("needs a state key and a membership"):
        room.check("m.room.member", BOB, {"membership": "join"})


def test_unknown_membership_is_refused() -> None:
    room = created_room("public")
    with refused("Unknown membership"):
        room.check_member(BOB, "lurk")


def test_membership_state_key_must_be_a_user_id() -> None:
    room = created_room("public")
    with refused("not a user ID"):
        room.check("m.room.member", ALICE, {"membership": "invite"}, "bob")


# --- sending events -------------------------------------------------------------------------


def test_member_can_send_messages() -> None:
    room = with_members(BOB)
    room.append("m.room.message", BOB, {"msgtype": "m.text", "body": "hi"})


def test_outsider_cannot_send_messages() -> None:
    room = created_room()
    with refused("not in this room"):
        room.check("m.room.message", BOB, {"body": "hi"})


def test_invited_user_cannot_send_messages_before_joining() -> None:
    room = created_room()
    room.member(BOB, "invite", sender=ALICE)
    with refused("not in this room"):
        room.check("m.room.message", BOB, {"body": "hi"})


def test_user_who_left_cannot_send_messages() -> None:
    room = with_members(BOB)
    room.member(BOB, "leave")
    with refused("not in this room"):
        room.check("m.room.message", BOB, {"body": "hi"})


def test_broadcast_channel_only_lets_moderators_post() -> None:
    room = with_members(MOD, BOB, events_default=50)
    with refused("power level 50 to send m.room.message"):
        room.check("m.room.message", BOB, {"body": "hi"})
    room.append("m.room.message", MOD, {"body": "announcement"})


def test_events_map_gates_custom_event_types() -> None:
    room = with_members(MOD, BOB, events={"com.linkchat.device.command": 100})
    with refused("com.linkchat.device.command"):
        room.check("com.linkchat.device.command", MOD, {"command": "ring"})
    room.append("com.linkchat.device.command", ALICE, {"command": "ring"})
    room.append("com.linkchat.device.result", BOB, {"ok": True})


def test_state_events_need_the_state_default_level() -> None:
    room = with_members(MOD, BOB)
    with refused("power level 50 to send m.room.topic"):
        room.check("m.room.topic", BOB, {"topic": "x"}, "")
    room.append("m.room.topic", MOD, {"topic": "x"}, "")


def test_events_map_can_open_a_state_event_type_to_everyone() -> None:
    room = with_members(BOB, events={"m.room.topic": 0})
    room.append("m.room.topic", BOB, {"topic": "x"}, "")


def test_users_default_raises_everyone_not_listed() -> None:
    room = with_members(BOB, users_default=50)
    room.append("m.room.topic", BOB, {"topic": "x"}, "")


def test_room_without_power_levels_lets_only_its_creator_send_state() -> None:
    room = Room()
    room.append("m.room.create", ALICE, {"room_version": "11"}, "")
    room.member(ALICE, "join")
    room.append("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
    room.member(BOB, "join")
    room.append("m.room.message", BOB, {"body": "hi"})
    with refused("power level 50"):
        room.check("m.room.name", BOB, {"name": "mine"}, "")
    with refused("power level 50"):
        room.check("m.room.power_levels", BOB, {"users": {BOB: 100}}, "")
    room.append("m.room.name", ALICE, {"name": "ours"}, "")


def test_state_key_naming_another_user_is_refused() -> None:
    room = with_members(BOB, events={"com.linkchat.device.capabilities": 0})
    with refused("may only be set by that user"):
        room.check("com.linkchat.device.capabilities", ALICE, {}, BOB)
    with refused("may only be set by that user"):
        room.check("com.linkchat.device.capabilities", BOB, {}, "@bobby:example.org")


def test_user_may_set_state_under_their_own_user_id() -> None:
    room = with_members(BOB, events={"com.linkchat.device.capabilities": 0})
    room.append("com.linkchat.device.capabilities", BOB, {"commands": []}, BOB)
    room.append("com.linkchat.device.capabilities", BOB, {}, "phone")


# --- changing power levels ------------------------------------------------------------------


def current_levels(room: Room) -> dict[str, Any]:
    content = room.state.content("m.room.power_levels")
    assert content is not None
    return dict(content)


def check_levels(room: Room, sender: str, **changes: Any) -> None:
    room.check("m.room.power_levels", sender, {**current_levels(room), **changes}, "")


def change_levels(room: Room, sender: str, **changes: Any) -> None:
    room.append("m.room.power_levels", sender, {**current_levels(room), **changes}, "")


def test_creator_sets_the_first_power_levels() -> None:
    room = Room()
    room.append("m.room.create", ALICE, {"room_version": "11"}, "")
    room.member(ALICE, "join")
    room.append("m.room.power_levels", ALICE, {"users": {ALICE: 100, BOB: 100}}, "")


@pytest.mark.parametrize(
    "content",
    [
        {"ban": "50"},
        {"kick": 50.0},
        {"redact": True},
        {"invite": None},
        {"state_default": 2**53},
        {"events": {"m.room.name": "50"}},
        {"events": ["m.room.name"]},
        {"notifications": {"room": 1.5}},
        {"users": {"bob": 50}},
        {"users": {BOB: "50"}},
        {"users": [BOB]},
    ],
)
def test_power_levels_with_non_integer_values_are_refused(content: dict[str, Any]) -> None:
    room = created_room()
    with refused("must"):
        check_levels(room, ALICE, **content)


def test_nobody_can_grant_a_level_above_their_own() -> None:
    room = with_members(MOD, events={"m.room.power_levels": 50})
    with refused("above your power level 50"):
        check_levels(room, MOD, users={ALICE: 100, MOD: 50, BOB: 51})
    change_levels(room, MOD, users={ALICE: 100, MOD: 50, BOB: 50})


def test_nobody_can_raise_their_own_level() -> None:
    room = with_members(MOD, events={"m.room.power_levels": 50})
    with refused("above your power level"):
        check_levels(room, MOD, users={ALICE: 100, MOD: 60})


def test_user_can_lower_their_own_level() -> None:
    room = with_members(MOD, events={"m.room.power_levels": 50})
    change_levels(room, MOD, users={ALICE: 100, MOD: 10})
    change_levels(room, ALICE, users={ALICE: 0})


def test_nobody_can_change_or_remove_a_user_at_or_above_their_level() -> None:
    room = with_members(
        MOD, events={"m.room.power_levels": 50}, users={ALICE: 100, MOD: 50, CAROL: 50}
    )
    with refused("not below yours"):
        check_levels(room, MOD, users={ALICE: 100, MOD: 50, CAROL: 0})
    with refused("not below yours"):
        check_levels(room, MOD, users={ALICE: 100, MOD: 50})
    with refused("not below yours"):
        check_levels(room, MOD, users={ALICE: 50, MOD: 50, CAROL: 50})


def test_admin_can_demote_a_moderator() -> None:
    room = with_members(MOD)
    change_levels(room, ALICE, users={ALICE: 100})
    assert PowerLevels.of_room(room.state).user_level(MOD) == 0


def test_nobody_can_change_a_threshold_above_their_level() -> None:
    room = with_members(MOD, events={"m.room.power_levels": 50}, ban=100)
    with refused("'ban'"):
        check_levels(room, MOD, ban=50)
    without_ban = {key: value for key, value in current_levels(room).items() if key != "ban"}
    with refused("'ban'"):
        room.check("m.room.power_levels", MOD, without_ban, "")
    with refused("'kick'"):
        check_levels(room, MOD, kick=51)
    change_levels(room, MOD, kick=40, redact=50)


def test_nobody_can_change_an_event_level_above_their_level() -> None:
    room = with_members(MOD, events={"m.room.power_levels": 50, "m.room.tombstone": 100})
    with refused("m.room.tombstone"):
        check_levels(room, MOD, events={"m.room.power_levels": 50})
    with refused("m.room.name"):
        check_levels(
            room,
            MOD,
            events={"m.room.power_levels": 50, "m.room.tombstone": 100, "m.room.name": 60},
        )
    change_levels(
        room, MOD, events={"m.room.power_levels": 50, "m.room.tombstone": 100, "m.room.name": 50}
    )


def test_nobody_can_change_a_notification_level_above_their_level() -> None:
    room = with_members(MOD, events={"m.room.power_levels": 50}, notifications={"room": 100})
    with refused("level of room"):
        check_levels(room, MOD, notifications={"room": 0})


def test_power_levels_change_needs_the_event_level() -> None:
    room = with_members(MOD, events={"m.room.power_levels": 100})
    with refused("power level 100 to send m.room.power_levels"):
        check_levels(room, MOD, kick=0)


# --- redactions -----------------------------------------------------------------------------


def test_user_can_redact_their_own_event() -> None:
    room = with_members(BOB)
    message = room.append("m.room.message", BOB, {"body": "oops"})
    room.check("m.room.redaction", BOB, {"redacts": message.event_id}, redacted_sender=BOB)


def test_redacting_someone_elses_event_needs_the_redact_level() -> None:
    room = with_members(BOB, CAROL)
    message = room.append("m.room.message", CAROL, {"body": "hi"})
    with refused("power level 50 to remove other people's events"):
        room.check("m.room.redaction", BOB, {"redacts": message.event_id}, redacted_sender=CAROL)


def test_moderator_can_redact_someone_elses_event() -> None:
    room = with_members(MOD, BOB)
    message = room.append("m.room.message", BOB, {"body": "spam"})
    room.check("m.room.redaction", MOD, {"redacts": message.event_id}, redacted_sender=BOB)


def test_redacting_an_unknown_event_needs_the_redact_level() -> None:
    room = with_members(MOD, BOB)
    with refused("remove other people's events"):
        room.check("m.room.redaction", BOB, {"redacts": "$unknown"})
    room.check("m.room.redaction", MOD, {"redacts": "$unknown"})


def test_redaction_must_name_its_target() -> None:
    room = with_members(MOD)
    with refused("redacts"):
        room.check("m.room.redaction", MOD, {}, redacted_sender=MOD)


def test_redactions_are_gated_by_the_events_map_too() -> None:
    room = with_members(BOB, events={"m.room.redaction": 100})
    message = room.append("m.room.message", BOB, {"body": "oops"})
    with refused("m.room.redaction"):
        room.check("m.room.redaction", BOB, {"redacts": message.event_id}, redacted_sender=BOB)


# --- power levels, read leniently -----------------------------------------------------------


def test_room_without_power_levels_gives_its_creator_100_and_others_0() -> None:
    room = Room()
    room.append("m.room.create", ALICE, {"room_version": "11"}, "")
    levels = PowerLevels.of_room(room.state)
    assert levels.user_level(ALICE) == 100
    assert levels.user_level(BOB) == 0
    assert levels.level_for_event("m.room.message", is_state=False) == 0
    assert levels.level_for_event("m.room.name", is_state=True) == 50


def test_power_levels_event_without_keys_uses_spec_defaults() -> None:
    levels = PowerLevels.from_content({})
    assert (levels.ban, levels.kick, levels.redact, levels.invite) == (50, 50, 50, 0)
    assert (levels.events_default, levels.state_default, levels.users_default) == (0, 50, 0)
    assert levels.user_level(ALICE) == 0
    assert levels.notification_level("room") == 50


def test_creator_has_no_special_level_once_power_levels_exist() -> None:
    room = created_room()
    room.append("m.room.power_levels", ALICE, {"users": {BOB: 100}}, "")
    assert PowerLevels.of_room(room.state).user_level(ALICE) == 0


def test_events_map_overrides_defaults_for_messages_and_state() -> None:
    levels = PowerLevels.from_content(
        {"events": {"m.room.name": 10, "m.reaction": 20}, "events_default": 5, "state_default": 70}
    )
    assert levels.level_for_event("m.room.name", is_state=True) == 10
    assert levels.level_for_event("m.reaction", is_state=False) == 20
    assert levels.level_for_event("m.room.topic", is_state=True) == 70
    assert levels.level_for_event("m.room.message", is_state=False) == 5


def test_numeric_strings_are_read_as_levels() -> None:
    levels = PowerLevels.from_content(
        {"ban": "75", "kick": " -3 ", "users": {BOB: "+40"}, "events": {"m.room.name": "20"}}
    )
    assert levels.ban == 75
    assert levels.kick == -3
    assert levels.user_level(BOB) == 40
    assert levels.level_for_event("m.room.name", is_state=True) == 20


@pytest.mark.parametrize("junk", [None, True, 1.5, "fifty", "", [50], {"a": 1}, 2**60])
def test_junk_levels_count_as_absent(junk: object) -> None:
    levels = PowerLevels.from_content(
        {
            "ban": junk,
            "users_default": junk,
            "state_default": junk,
            "users": {BOB: junk, CAROL: 7},
            "events": {"m.room.name": junk},
        }
    )
    assert levels.ban == 50
    assert levels.state_default == 50
    assert levels.user_level(BOB) == 0
    assert levels.user_level(CAROL) == 7
    assert levels.level_for_event("m.room.name", is_state=True) == 50


def test_junk_maps_count_as_empty() -> None:
    levels = PowerLevels.from_content({"users": [BOB], "events": "x", "notifications": 3})
    assert levels.users == {}
    assert levels.events == {}
    assert levels.notification_level("room") == 50


def test_malformed_power_levels_in_the_log_do_not_break_the_room() -> None:
    room = with_members(BOB)
    room.force("m.room.power_levels", ALICE, {"users": "nope", "ban": [1], "kick": {}}, "")
    room.append("m.room.message", BOB, {"body": "still works"})
    with refused("power level 50 to ban"):
        room.check_member(ALICE, "ban", sender=BOB)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "users",
                "users_default",
                "events",
                "events_default",
                "state_default",
                "ban",
                "kick",
                "redact",
                "invite",
                "notifications",
                "x",
            ]
        ),
        _json,
    )
)
def test_any_power_levels_content_can_be_read(content: dict[str, Any]) -> None:
    levels = PowerLevels.from_content(content)
    assert isinstance(levels.user_level(BOB), int)
    assert isinstance(levels.level_for_event("m.room.message", is_state=False), int)


# --- what other room versions change (events/room_versions.py) ---------------------------------


def room_of_version(version: str, join_rule: str = "invite", **create: Any) -> Room:
    room = Room()
    content: dict[str, Any] = {"room_version": version, **create}
    if int(version) <= 10:
        content.setdefault("creator", ALICE)
    room.append("m.room.create", ALICE, content, "")
    room.member(ALICE, "join")
    # In version 12 the creators' power is their own, never in the power levels.
    users = {MOD: 50} if version == "12" else {ALICE: 100, MOD: 50}
    room.append("m.room.power_levels", ALICE, {"users": users}, "")
    room.append("m.room.join_rules", ALICE, {"join_rule": join_rule}, "")
    return room


@pytest.mark.parametrize("version", [str(v) for v in range(1, 11)])
def test_versions_before_11_need_the_creator_in_the_create_event(version: str) -> None:
    with refused("creator"):
        Room().check("m.room.create", ALICE, {"room_version": version}, "")
    Room().check("m.room.create", ALICE, {"room_version": version, "creator": ALICE}, "")


def test_a_create_event_without_a_version_makes_a_version_1_room() -> None:
    with refused("creator"):
        Room().check("m.room.create", ALICE, {}, "")


def test_before_11_the_first_join_belongs_to_the_named_creator() -> None:
    room = Room()
    room.append("m.room.create", ALICE, {"room_version": "10", "creator": BOB}, "")
    with refused("invitation"):
        room.check_member(ALICE, "join")
    room.check_member(BOB, "join")


@pytest.mark.parametrize(
    ("version", "allowed"), [("6", False), ("7", True), ("10", True), ("12", True)]
)
def test_knocking_exists_from_version_7(version: str, allowed: bool) -> None:
    room = room_of_version(version, "knock")
    if allowed:
        room.check_member(BOB, "knock")
    else:
        with refused("Unknown membership"):
            room.check_member(BOB, "knock")
        with refused("Nobody may join"):
            room.check_member(BOB, "join")


@pytest.mark.parametrize(
    ("version", "rule", "known"),
    [
        ("7", "restricted", False),
        ("8", "restricted", True),
        ("9", "knock_restricted", False),
        ("10", "knock_restricted", True),
    ],
)
def test_restricted_join_rules_arrive_with_versions_8_and_10(
    version: str, rule: str, known: bool
) -> None:
    room = room_of_version(version, rule)
    vouched = {"join_authorised_via_users_server": ALICE}
    if known:
        room.check_member(BOB, "join", **vouched)
    else:
        with refused("Nobody may join"):
            room.check_member(BOB, "join", **vouched)


@pytest.mark.parametrize(("version", "allowed"), [("9", True), ("10", False), ("11", False)])
def test_string_power_levels_are_allowed_before_version_10(version: str, allowed: bool) -> None:
    room = room_of_version(version)
    content = {"users": {ALICE: "100", MOD: 50}, "ban": "50"}
    if allowed:
        room.check("m.room.power_levels", ALICE, content, "")
    else:
        with refused("integer"):
            room.check("m.room.power_levels", ALICE, content, "")


@pytest.mark.parametrize(("version", "checked"), [("5", False), ("6", True)])
def test_notification_levels_are_guarded_from_version_6(version: str, checked: bool) -> None:
    room = room_of_version(version)
    room.member(MOD, "invite", sender=ALICE)
    room.member(MOD, "join")
    raised = {"users": {ALICE: 100, MOD: 50}, "notifications": {"room": 90}}
    if checked:
        with refused("room"):
            room.check("m.room.power_levels", MOD, raised, "")
    else:
        room.check("m.room.power_levels", MOD, raised, "")


@pytest.mark.parametrize(("version", "special"), [("5", True), ("6", False)])
def test_aliases_events_have_their_own_rule_up_to_version_5(version: str, special: bool) -> None:
    room = room_of_version(version)
    aliases = {"aliases": ["#a:example.org"]}
    if special:
        # Anyone of the server may set its aliases, even from outside the room.
        room.check("m.room.aliases", CAROL, aliases, "example.org")
        with refused("sender's server"):
            room.check("m.room.aliases", ALICE, aliases, "elsewhere.example")
    else:
        with refused("not in this room"):
            room.check("m.room.aliases", CAROL, aliases, "example.org")


def test_version_12_creators_have_unlimited_power() -> None:
    room = room_of_version("12", additional_creators=[CAROL])
    room.member(CAROL, "invite", sender=ALICE)
    room.member(CAROL, "join")
    # Above any level the power levels can give: not even a 100 can touch a creator.
    room.append(
        "m.room.power_levels", ALICE, {"users": {MOD: 100}, "events": {"x.top": 2**53 - 1}}, ""
    )
    room.member(MOD, "invite", sender=ALICE)
    room.member(MOD, "join")
    room.check("x.top", CAROL, {}, "")
    with refused("remove"):
        room.check_member(CAROL, "leave", sender=MOD)
    room.check_member(MOD, "leave", sender=CAROL)


def test_version_12_power_levels_may_not_name_a_creator() -> None:
    room = room_of_version("12", additional_creators=[CAROL])
    with refused("creators"):
        room.check("m.room.power_levels", ALICE, {"users": {CAROL: 100}}, "")
    with refused("creators"):
        room.check("m.room.power_levels", ALICE, {"users": {ALICE: 100}}, "")


def test_version_12_additional_creators_must_be_user_ids() -> None:
    with refused("additional_creators"):
        Room().check("m.room.create", ALICE, {"room_version": "12", "additional_creators": "x"}, "")
    with refused("additional_creators"):
        Room().check(
            "m.room.create", ALICE, {"room_version": "12", "additional_creators": ["carol"]}, ""
        )
