"""The spec's server-default push rules ("Predefined Rules", client-server API, Push).

Each rule is written out as the spec defines it, in the spec's order: a client
evaluates rules of one kind top to bottom, so the order is part of the meaning.
Three rules name their owner: the template (`default_template`) holds the
markers `rules.USER_ID` and `rules.LOCALPART` where the spec writes "[the
user's Matrix ID]" or "[the local part of the user's Matrix ID]";
`default_ruleset` fills them in. Evaluation compiles the template itself once
(rules.py), so every member on the default rules shares one compiled ruleset.

Our own rules, after the spec's in their kind:

- `.com.linkchat.rule.device_command` (override, device accounts only): a
  command sent to the device notifies it, high priority and data only
  (tweaks `com.linkchat.priority: high`, `com.linkchat.data_only: true`), so a
  sleeping desktop agent is woken to fetch it; nothing is shown.
- `.com.linkchat.rule.friend_request` (override): a friend request received
  (the `incoming` fact in the recipient's account chain) notifies, with sound.

The spec's current text gives silent rules `"actions": []`; older versions
wrote `["dont_notify"]`, which the spec now calls a no-op, so we serve `[]`.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from homeserver.accounts.identifiers import DEVICE_NAMESPACE
from homeserver.events import types
from homeserver.push.rules import KINDS, LOCALPART, USER_ID

Rule = dict[str, Any]
Ruleset = dict[str, list[Rule]]

__all__ = ["KINDS", "Rule", "Ruleset", "default_ruleset", "default_template", "find_rule"]

DEVICE_COMMAND_RULE: Final = ".com.linkchat.rule.device_command"
FRIEND_REQUEST_RULE: Final = ".com.linkchat.rule.friend_request"
PRIORITY_TWEAK: Final = "com.linkchat.priority"
DATA_ONLY_TWEAK: Final = "com.linkchat.data_only"

_SOUND_DEFAULT: Final = {"set_tweak": "sound", "value": "default"}
_SOUND_RING: Final = {"set_tweak": "sound", "value": "ring"}
_HIGHLIGHT: Final = {"set_tweak": "highlight"}


def _rule(rule_id: str, conditions: list[dict[str, Any]], actions: list[Any]) -> Rule:
    return {
        "rule_id": rule_id,
        "default": True,
        # Only .m.rule.master starts disabled: enabling it mutes everything.
        "enabled": rule_id != ".m.rule.master",
        "conditions": conditions,
        "actions": actions,
    }


def _event_match(key: str, pattern: str) -> dict[str, Any]:
    return {"kind": "event_match", "key": key, "pattern": pattern}


def _override_rules(user_id: str, device: bool) -> list[Rule]:
    return [
        _rule(".m.rule.master", [], []),
        _rule(".m.rule.suppress_notices", [_event_match("content.msgtype", "m.notice")], []),
        _rule(
            ".m.rule.invite_for_me",
            [
                _event_match("type", "m.room.member"),
                _event_match("content.membership", "invite"),
                _event_match("state_key", user_id),
            ],
            ["notify", _SOUND_DEFAULT],
        ),
        _rule(".m.rule.member_event", [_event_match("type", "m.room.member")], []),
        _rule(
            ".m.rule.is_user_mention",
            [
                {
                    "kind": "event_property_contains",
                    # The dot inside "m.mentions" is escaped: it is one key, not two.
                    "key": "content.m\\.mentions.user_ids",
                    "value": user_id,
                }
            ],
            ["notify", _SOUND_DEFAULT, _HIGHLIGHT],
        ),
        _rule(
            ".m.rule.contains_display_name",
            [{"kind": "contains_display_name"}],
            ["notify", _SOUND_DEFAULT, _HIGHLIGHT],
        ),
        _rule(
            ".m.rule.is_room_mention",
            [
                {"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
                {"kind": "sender_notification_permission", "key": "room"},
            ],
            ["notify", _HIGHLIGHT],
        ),
        _rule(
            ".m.rule.roomnotif",
            [
                _event_match("content.body", "@room"),
                {"kind": "sender_notification_permission", "key": "room"},
            ],
            ["notify", _HIGHLIGHT],
        ),
        _rule(
            ".m.rule.tombstone",
            [_event_match("type", "m.room.tombstone"), _event_match("state_key", "")],
            ["notify", _HIGHLIGHT],
        ),
        _rule(".m.rule.reaction", [_event_match("type", "m.reaction")], []),
        # The spec spells this one with a dot: ".m.rule.room.server_acl".
        _rule(
            ".m.rule.room.server_acl",
            [_event_match("type", "m.room.server_acl"), _event_match("state_key", "")],
            [],
        ),
        _rule(
            ".m.rule.suppress_edits",
            [
                {
                    "kind": "event_property_is",
                    "key": "content.m\\.relates_to.rel_type",
                    "value": "m.replace",
                }
            ],
            [],
        ),
        *(_device_rules() if device else []),
        _rule(
            FRIEND_REQUEST_RULE,
            [_event_match("type", types.FRIEND), _event_match("content.relation", "incoming")],
            ["notify", _SOUND_DEFAULT],
        ),
    ]


def _device_rules() -> list[Rule]:
    return [
        _rule(
            DEVICE_COMMAND_RULE,
            [_event_match("type", types.DEVICE_COMMAND)],
            [
                "notify",
                {"set_tweak": PRIORITY_TWEAK, "value": "high"},
                {"set_tweak": DATA_ONLY_TWEAK, "value": True},
            ],
        )
    ]


def _content_rules(localpart: str) -> list[Rule]:
    # Content rules carry a `pattern` instead of `conditions`.
    return [
        {
            "rule_id": ".m.rule.contains_user_name",
            "default": True,
            "enabled": True,
            "pattern": localpart,
            "actions": ["notify", _SOUND_DEFAULT, _HIGHLIGHT],
        }
    ]


def _underride_rules() -> list[Rule]:
    one_to_one = {"kind": "room_member_count", "is": "2"}
    return [
        _rule(".m.rule.call", [_event_match("type", "m.call.invite")], ["notify", _SOUND_RING]),
        _rule(
            ".m.rule.encrypted_room_one_to_one",
            [one_to_one, _event_match("type", "m.room.encrypted")],
            ["notify", _SOUND_DEFAULT],
        ),
        _rule(
            ".m.rule.room_one_to_one",
            [one_to_one, _event_match("type", "m.room.message")],
            ["notify", _SOUND_DEFAULT],
        ),
        _rule(".m.rule.message", [_event_match("type", "m.room.message")], ["notify"]),
        _rule(".m.rule.encrypted", [_event_match("type", "m.room.encrypted")], ["notify"]),
    ]


def localpart(user_id: str) -> str:
    """The part between "@" and the first ":" of a user ID."""
    return user_id.removeprefix("@").partition(":")[0]


def is_device_account(user_id: str) -> bool:
    return DEVICE_NAMESPACE in localpart(user_id)


def _template(device: bool) -> Ruleset:
    return {
        "override": _override_rules(USER_ID, device),
        "content": _content_rules(LOCALPART),
        "room": [],
        "sender": [],
        "underride": _underride_rules(),
    }


_TEMPLATES: Final = {False: _template(False), True: _template(True)}


def default_template(user_id: str) -> Ruleset:
    """The default rules of `user_id`'s kind of account, with the owner left open
    (shared: never change it)."""
    return _TEMPLATES[is_device_account(user_id)]


def fill_in(ruleset: Ruleset, user_id: str) -> Ruleset:
    """A copy of `ruleset` with the markers replaced by the user's ID and localpart."""
    names = {USER_ID: user_id, LOCALPART: localpart(user_id)}

    def fill(node: Any) -> Any:
        if isinstance(node, str):
            return names.get(node, node)
        if isinstance(node, dict):
            return {key: fill(value) for key, value in node.items()}
        if isinstance(node, list):
            return [fill(item) for item in node]
        return node

    return {kind: fill(copy.deepcopy(rules)) for kind, rules in ruleset.items()}


def default_ruleset(user_id: str) -> Ruleset:
    """The global ruleset a user has before changing anything: every kind, in spec order."""
    return fill_in(default_template(user_id), user_id)


def find_rule(ruleset: Ruleset, kind: str, rule_id: str) -> Rule | None:
    """The rule of `kind` named `rule_id`, or None."""
    return next((rule for rule in ruleset.get(kind, []) if rule["rule_id"] == rule_id), None)
