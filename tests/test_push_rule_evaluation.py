"""Push rule evaluation (push/rules.py): the spec's conditions and every default rule.

Pure unit tests: no database, no server.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homeserver.push.default_rules import default_ruleset, default_template
from homeserver.push.rules import (
    EventView,
    Recipient,
    RoomFacts,
    compile_condition,
    compile_ruleset,
    evaluate,
    evaluate_group,
    glob_matches,
    property_path,
)
from homeserver.rooms.power_levels import PowerLevels

ME = "@alice:hs"
OWNER = "@owner:hs"
GROUP = RoomFacts(5, PowerLevels.from_content({"users": {OWNER: 100}}))
PAIR = RoomFacts(2, PowerLevels.from_content({"users": {OWNER: 100}}))


def view(
    content: dict[str, Any] | None = None,
    event_type: str = "m.room.message",
    sender: str = "@bob:hs",
    **fields: Any,
) -> EventView:
    base: dict[str, Any] = {
        "type": event_type,
        "sender": sender,
        "room_id": "!room:hs",
        "event_id": "$e",
        "content": {"msgtype": "m.text", "body": "hi"} if content is None else content,
    }
    return EventView({**base, **fields})


def holds(condition: dict[str, Any], event: EventView, room: RoomFacts = GROUP) -> bool:
    check = compile_condition(condition)
    if callable(check):
        return bool(check(event, room))
    return check.possible(event, room) and check.check(event, Recipient(ME, "Alice"))


# --- conditions ----------------------------------------------------------------------


def test_property_paths_split_on_unescaped_dots() -> None:
    assert property_path("content.body") == ("content", "body")
    assert property_path("content.m\\.mentions.user_ids") == ("content", "m.mentions", "user_ids")
    assert property_path("a\\\\.b") == ("a\\", "b")


def test_event_match_is_a_case_insensitive_glob_on_the_whole_value() -> None:
    # The spec's example: key content.topic, pattern lunc?*.
    topic = {"kind": "event_match", "key": "content.topic", "pattern": "lunc?*"}
    for value, expected in [("Lunch plans", True), ("LUNCH", True), (" lunch", False)]:
        assert holds(topic, view({"topic": value})) is expected, value
    assert holds(topic, view({"topic": "lunc"})) is False  # ? must match a character
    assert holds(topic, view({"topic": None})) is False  # not a string
    assert holds({**topic, "pattern": "*"}, view({})) is False  # absent: even * fails


def test_event_match_on_the_body_matches_between_word_boundaries() -> None:
    # The spec's example: key content.body, pattern ex*ple.
    assert glob_matches("ex*ple", "An example event.", words=True)
    assert glob_matches("ex*ple", "exple", words=True)
    assert glob_matches("ex*ple", "An exciting triple-whammy", words=True)
    assert not glob_matches("cake", "cupcakes", words=True)
    assert glob_matches("cake", "a cake!", words=True)
    body = {"kind": "event_match", "key": "content.body", "pattern": "cake"}
    assert holds(body, view({"body": "Cake time"}))
    assert not holds(body, view({"body": "pancakes"}))


def test_event_property_is_matches_exact_json_values() -> None:
    federate = {"kind": "event_property_is", "key": "content.m\\.federate", "value": True}
    assert holds(federate, view({"m.federate": True}))
    assert not holds(federate, view({"m.federate": "true"}))  # a string
    assert not holds(federate, view({"m.federate": 1}))  # do not cast types
    assert not holds(federate, view({}))
    number = {"kind": "event_property_is", "key": "content.n", "value": 1}
    assert holds(number, view({"n": 1})) and not holds(number, view({"n": True}))
    null = {"kind": "event_property_is", "key": "content.x", "value": None}
    assert holds(null, view({"x": None})) and not holds(null, view({}))
    compound = {"kind": "event_property_is", "key": "content.x", "value": [1]}
    assert not holds(compound, view({"x": [1]}))


def test_event_property_contains_matches_an_array_member() -> None:
    aliases = {
        "kind": "event_property_contains",
        "key": "content.alt_aliases",
        "value": "#myroom:example.com",
    }
    assert holds(aliases, view({"alt_aliases": ["#somewhere:example.org", "#myroom:example.com"]}))
    assert not holds(aliases, view({"alt_aliases": [":example.com"]}))  # partial values
    assert not holds(aliases, view({"alt_aliases": "#myroom:example.com"}))  # not an array
    numbers = {"kind": "event_property_contains", "key": "content.a", "value": 1}
    assert not holds(numbers, view({"a": [True]}))


def test_contains_display_name_matches_the_name_as_whole_words() -> None:
    condition = {"kind": "contains_display_name"}
    assert holds(condition, view({"body": "hey alice, look"}))
    assert not holds(condition, view({"body": "malice"}))
    assert not holds(condition, view({"body": 3}))
    starry = compile_condition(condition)
    assert not callable(starry)
    stars = Recipient(ME, "A*")
    assert starry.check(view({"body": "A* here"}), stars)
    assert not starry.check(view({"body": "Ab here"}), stars)  # '*' is literal in a name
    assert not starry.check(view({"body": "alice"}), Recipient(ME, None))


@pytest.mark.parametrize(
    ("spec", "count", "expected"),
    [
        ("2", 2, True),
        ("2", 3, False),
        ("==2", 2, True),
        ("<3", 2, True),
        ("<3", 3, False),
        (">3", 4, True),
        (">=3", 3, True),
        ("<=3", 4, False),
        ("x", 2, False),
        ("", 2, False),
    ],
)
def test_room_member_count_compares_as_the_prefix_says(
    spec: str, count: int, expected: bool
) -> None:
    room = RoomFacts(count, PowerLevels())
    assert holds({"kind": "room_member_count", "is": spec}, view(), room) is expected


def test_sender_notification_permission_reads_the_power_levels() -> None:
    condition = {"kind": "sender_notification_permission", "key": "room"}
    assert holds(condition, view(sender=OWNER))
    assert not holds(condition, view(sender="@nobody:hs"))
    custom = RoomFacts(5, PowerLevels.from_content({"notifications": {"room": 0}}))
    assert holds(condition, view(sender="@nobody:hs"), custom)


def test_unknown_or_malformed_conditions_never_match() -> None:
    assert not holds({"kind": "org.example.future"}, view())
    assert not holds({"kind": "event_match", "key": "type"}, view())  # no pattern
    assert not holds({"kind": "event_property_is", "value": 1}, view())  # no key
    rules = compile_ruleset(
        {"override": [_rule("x", [{"kind": "nonsense"}], ["notify"])], "underride": []}
    )
    assert evaluate(rules, view(), GROUP, Recipient(ME)) is None


def _rule(rule_id: str, conditions: list[Any], actions: list[Any], **more: Any) -> dict[str, Any]:
    return {
        "rule_id": rule_id,
        "default": False,
        "enabled": True,
        "conditions": conditions,
        "actions": actions,
        **more,
    }


# --- every default rule --------------------------------------------------------------

DEFAULTS = compile_ruleset(default_template(ME))
DEVICE_DEFAULTS = compile_ruleset(default_template("@alice.dev.x1:hs"))


def outcome(
    event: EventView, room: RoomFacts = GROUP, name: str | None = "Alice Liddell"
) -> str | None:
    found = evaluate(DEFAULTS, event, room, Recipient(ME, name))
    return found.rule_id if found is not None else None


@pytest.mark.parametrize(
    ("event", "room", "rule"),
    [
        (view({"msgtype": "m.notice", "body": "alice"}), GROUP, ".m.rule.suppress_notices"),
        (
            view({"membership": "invite"}, "m.room.member", state_key=ME),
            GROUP,
            ".m.rule.invite_for_me",
        ),
        (
            view({"membership": "invite"}, "m.room.member", state_key="@carol:hs"),
            GROUP,
            ".m.rule.member_event",
        ),
        (
            view({"membership": "join"}, "m.room.member", state_key="@bob:hs"),
            GROUP,
            ".m.rule.member_event",
        ),
        (view({"body": "x", "m.mentions": {"user_ids": [ME]}}), GROUP, ".m.rule.is_user_mention"),
        (view({"body": "hi Alice Liddell!"}), GROUP, ".m.rule.contains_display_name"),
        (
            view({"body": "x", "m.mentions": {"room": True}}, sender=OWNER),
            GROUP,
            ".m.rule.is_room_mention",
        ),
        (view({"body": "@room now"}, sender=OWNER), GROUP, ".m.rule.roomnotif"),
        (view({"body": "gone"}, "m.room.tombstone", state_key=""), GROUP, ".m.rule.tombstone"),
        (
            view({"m.relates_to": {"rel_type": "m.annotation"}}, "m.reaction"),
            GROUP,
            ".m.rule.reaction",
        ),
        (view({}, "m.room.server_acl", state_key=""), GROUP, ".m.rule.room.server_acl"),
        (
            view({"body": "* x", "m.relates_to": {"rel_type": "m.replace", "event_id": "$a"}}),
            GROUP,
            ".m.rule.suppress_edits",
        ),
        (view({"body": "ALICE?"}), GROUP, ".m.rule.contains_user_name"),
        (view({}, "m.call.invite"), GROUP, ".m.rule.call"),
        (view({"ciphertext": "x"}, "m.room.encrypted"), PAIR, ".m.rule.encrypted_room_one_to_one"),
        (view(), PAIR, ".m.rule.room_one_to_one"),
        (view(), GROUP, ".m.rule.message"),
        (view({"ciphertext": "x"}, "m.room.encrypted"), GROUP, ".m.rule.encrypted"),
        (
            view({"relation": "incoming", "ts": 1}, "com.linkchat.friend", state_key="@bob:hs"),
            GROUP,
            ".com.linkchat.rule.friend_request",
        ),
        (view({}, "m.room.topic", state_key=""), GROUP, None),
    ],
)
def test_each_default_rule_matches_its_events(
    event: EventView, room: RoomFacts, rule: str | None
) -> None:
    assert outcome(event, room) == rule


def test_default_rules_actions_say_notify_highlight_and_sound_as_the_spec() -> None:
    mention = evaluate(DEFAULTS, view({"body": "alice"}), GROUP, Recipient(ME))
    assert mention is not None and mention.notify and mention.highlight
    assert mention.tweaks == {"sound": "default", "highlight": True}
    message = evaluate(DEFAULTS, view(), GROUP, Recipient(ME))
    assert message is not None and message.notify and not message.highlight
    edit = view({"body": "alice", "m.relates_to": {"rel_type": "m.replace"}, "m.mentions": {}})
    suppressed = evaluate(DEFAULTS, edit, GROUP, Recipient(ME))
    assert suppressed is not None and not suppressed.notify


def test_at_room_needs_the_notification_power() -> None:
    assert outcome(view({"body": "@room now"})) == ".m.rule.message"
    assert outcome(view({"body": "x", "m.mentions": {"room": True}})) == ".m.rule.message"


def test_legacy_mention_rules_skip_events_with_m_mentions() -> None:
    # m.mentions present (even empty): the body is not searched for names or @room.
    assert outcome(view({"body": "alice Alice @room", "m.mentions": {}}, sender=OWNER)) == (
        ".m.rule.message"
    )


def test_master_rule_when_enabled_silences_everything() -> None:
    ruleset = default_ruleset(ME)
    ruleset["override"][0]["enabled"] = True
    silenced = compile_ruleset(ruleset)
    found = evaluate(silenced, view({"body": "alice"}), GROUP, Recipient(ME))
    assert found is not None and found.rule_id == ".m.rule.master" and not found.notify


def test_a_device_account_is_woken_by_commands_only_it_gets() -> None:
    command = view({"action": "beep", "args": {}, "ttl_ms": 1}, "com.linkchat.device.command")
    found = evaluate(DEVICE_DEFAULTS, command, PAIR, Recipient("@alice.dev.x1:hs"))
    assert found is not None and found.rule_id == ".com.linkchat.rule.device_command"
    assert found.notify and found.tweaks == {
        "com.linkchat.priority": "high",
        "com.linkchat.data_only": True,
    }
    assert evaluate(DEFAULTS, command, PAIR, Recipient(ME)) is None


def test_user_rules_of_each_kind_in_the_spec_order() -> None:
    ruleset = default_ruleset(ME)
    ruleset["room"] = [{"rule_id": "!room:hs", "default": False, "enabled": True, "actions": []}]
    ruleset["sender"] = [
        {"rule_id": "@bob:hs", "default": False, "enabled": True, "actions": ["notify"]}
    ]
    ruleset["content"].insert(
        0,
        {
            "rule_id": "beer",
            "default": False,
            "enabled": True,
            "pattern": "beer*",
            "actions": ["notify", {"set_tweak": "sound", "value": "beer.wav"}],
        },
    )
    compiled = compile_ruleset(ruleset)
    beer = evaluate(compiled, view({"body": "beers tonight?"}), GROUP, Recipient(ME))
    assert beer is not None and beer.tweaks == {"sound": "beer.wav"}
    # The room rule comes before the sender rule.
    plain = evaluate(compiled, view(), GROUP, Recipient(ME))
    assert plain is not None and plain.rule_id == "!room:hs" and not plain.notify
    elsewhere = evaluate(compiled, view(room_id="!other:hs"), GROUP, Recipient(ME))
    assert elsewhere is not None and elsewhere.rule_id == "@bob:hs"


# --- grouped evaluation equals one by one -------------------------------------------

names = st.sampled_from(["alice", "Bob", "carol", "Dave Smith", "e*", None])
bodies = st.sampled_from(
    ["hello", "hi alice", "Dave Smith!", "bob@room", "@room", "carolyn", "e* and more", "ALICE"]
)


@settings(max_examples=200, deadline=None)
@given(
    members=st.lists(
        st.tuples(st.sampled_from(["alice", "bob", "carol", "dave"]), names),
        min_size=1,
        max_size=6,
        unique_by=lambda m: m[0],
    ),
    body=bodies,
    mentions=st.one_of(st.none(), st.lists(st.sampled_from(["@alice:hs", "@bob:hs"]))),
    sender=st.sampled_from([OWNER, "@zed:hs"]),
)
def test_grouped_evaluation_agrees_with_evaluating_each_member(
    members: list[tuple[str, str | None]], body: str, mentions: list[str] | None, sender: str
) -> None:
    content: dict[str, Any] = {"msgtype": "m.text", "body": body}
    if mentions is not None:
        content["m.mentions"] = {"user_ids": mentions}
    event = view(content, sender=sender)
    recipients = [Recipient(f"@{name}:hs", display) for name, display in members]
    grouped = evaluate_group(DEFAULTS, event, GROUP, recipients)
    for recipient in recipients:
        alone = evaluate(DEFAULTS, event, GROUP, recipient)
        assert grouped.get(recipient.user_id) == alone, recipient
