"""Push rule evaluation (pure): which rule of a ruleset an event matches, and what it does.

A ruleset (the spec's "Push Rules") is compiled once into `CompiledRules`: each
enabled rule in evaluation order (override, content, room, sender, underride;
.m.rule.master first), its conditions turned into small checks, its actions
into an `Outcome` shared by every match. Evaluating an event is then a walk down
that list over an `EventView`, which reads each property of the event once.

Conditions come in two sorts. Most depend on the event and its room alone
(`event_match` against a literal pattern, `room_member_count`, the sender's
notification power): they are decided once per event, whoever the recipient.
A few depend on the recipient (`contains_display_name`, and the server-default
rules that name the user: `.m.rule.invite_for_me`, `.m.rule.is_user_mention`,
`.m.rule.contains_user_name`, whose ruleset is a template with the user left
open). `evaluate_group` evaluates one event for every member sharing a compiled
ruleset: a rule whose shared conditions fail is skipped for all of them at
once, a rule without per-user conditions settles everyone still undecided at
once, and only per-user conditions run per member, each a cheap test first (a
substring search, a set lookup). A post to a channel of 10,000 subscribers on
the default rules is a few checks plus two substring tests per subscriber, not
10,000 walks of the ruleset.

Glob patterns (the spec's appendix "Glob-style matching"): `*` any run of
characters, `?` one character, case-insensitive; `event_match` matches the whole
value, except on `content.body`, where it matches any substring that starts and
ends at a word boundary (the start or end of the body, or a character not in
`[A-Za-z0-9_]`).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from homeserver.rooms.power_levels import PowerLevels

JsonDict = dict[str, Any]

KINDS: Final = ("override", "content", "room", "sender", "underride")
# Markers a ruleset template holds where the spec writes "[the user's Matrix ID]"
# and "[the local part of the user's Matrix ID]" (default_rules.py). U+0000 is in no
# user ID, and no client can send one (app.py refuses it).
USER_ID: Final = "\x00user_id"
LOCALPART: Final = "\x00localpart"
# Rules the spec says to apply only to events without `m.mentions` (as of v1.7).
LEGACY_MENTION_RULES: Final = frozenset(
    {".m.rule.contains_display_name", ".m.rule.contains_user_name", ".m.rule.roomnotif"}
)
# Actions from older versions of the spec: clients and servers MUST ignore them.
HISTORICAL_ACTIONS: Final = frozenset({"dont_notify", "coalesce"})
_WORD: Final = "A-Za-z0-9_"
# Canonical JSON integers.
_MIN_INT: Final = -(2**53) + 1
_MAX_INT: Final = 2**53 - 1


# Property paths ("content.m\.mentions.user_ids")


@functools.lru_cache(maxsize=1024)
def property_path(key: str) -> tuple[str, ...]:
    """The parts of a dot-separated property path; `\\.` is a dot inside a part and
    `\\\\` a backslash (the spec's appendix "Dot-separated property paths")."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in key:
        if escaped:
            current.append(char if char in ".\\" else "\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return tuple(parts)


_ABSENT: Final = object()
# Literal '*' and '?' in a glob made by `_escape_glob` (U+0001, U+0002 are in no ID or name
# a glob is made of: Matrix IDs and display names are printable).
_LITERAL_WILDCARDS: Final = {"\x01": "*", "\x02": "?"}


class EventView:
    """An event as push rules see it: its fields (`type`, `content`, `sender`,
    `state_key`, `room_id`, `event_id`), each property path looked up once."""

    __slots__ = ("_body_lower", "_fields", "_found", "has_mentions")

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self._fields = fields
        self._found: dict[str, object] = {}
        self._body_lower: str | object | None = _ABSENT
        content = fields.get("content")
        self.has_mentions = isinstance(content, Mapping) and "m.mentions" in content

    @property
    def sender(self) -> str | None:
        sender = self._fields.get("sender")
        return sender if isinstance(sender, str) else None

    @property
    def room_id(self) -> str | None:
        room_id = self._fields.get("room_id")
        return room_id if isinstance(room_id, str) else None

    def value(self, key: str) -> object:
        """The property at `key`, or `_ABSENT`."""
        found = self._found.get(key, _ABSENT)
        if found is _ABSENT:
            node: object = self._fields
            for part in property_path(key):
                if not isinstance(node, Mapping) or part not in node:
                    node = _ABSENT
                    break
                node = node[part]
            self._found[key] = found = node
        return found

    def string(self, key: str) -> str | None:
        found = self.value(key)
        return found if isinstance(found, str) else None

    def body_lower(self) -> str | None:
        """`content.body` in lower case, for the substring tests before the regexes."""
        if self._body_lower is _ABSENT:
            body = self.string("content.body")
            self._body_lower = body.lower() if body is not None else None
        return self._body_lower  # type: ignore[return-value]


def _is_simple_json(value: object) -> bool:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    return isinstance(value, int) and _MIN_INT <= value <= _MAX_INT


def _same_value(a: object, b: object) -> bool:
    """Exact JSON equality: `true` is not `1`, `"1"` is not `1`."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    return type(a) is type(b) and a == b


# Globs


@functools.lru_cache(maxsize=4096)
def glob_regex(pattern: str, words: bool) -> re.Pattern[str]:
    """The regex of a glob: whole-value, or (`words`) any substring between word boundaries."""
    body = "".join(
        ".*?"
        if char == "*"
        else "."
        if char == "?"
        else re.escape(_LITERAL_WILDCARDS.get(char, char))
        for char in pattern
    )
    if not words:
        return re.compile(body, re.IGNORECASE | re.DOTALL)
    # A boundary: the start or end, or a non-word character on either side.
    start = f"(?:(?<![{_WORD}])|(?![{_WORD}]))"
    end = f"(?:(?![{_WORD}])|(?<![{_WORD}]))"
    return re.compile(start + body + end, re.IGNORECASE | re.DOTALL)


def glob_matches(pattern: str, value: str, *, words: bool = False) -> bool:
    regex = glob_regex(pattern, words)
    return (regex.search(value) if words else regex.fullmatch(value)) is not None


def _contains_words(needle: str, lower_needle: str, body: str, body_lower: str) -> bool:
    """Whether the literal `needle` occurs in `body` between word boundaries (a
    substring test first: it is absent from nearly every body)."""
    if not lower_needle or lower_needle not in body_lower:
        return False
    return glob_regex(_escape_glob(needle), True).search(body) is not None


def _escape_glob(text: str) -> str:
    """A glob matching `text` literally (a display name, a room or sender rule's ID):
    its '*' and '?' become markers that `glob_regex` reads as those characters."""
    return text.replace("*", "\x01").replace("?", "\x02")


# Context: what the conditions read besides the event


@dataclass(frozen=True, slots=True)
class RoomFacts:
    """The room at the event, as conditions read it."""

    member_count: int
    power: PowerLevels

    def sender_may_notify(self, sender: str | None, key: str) -> bool:
        if sender is None:
            return False
        return self.power.user_level(sender) >= self.power.notification_level(key)


@dataclass(frozen=True, slots=True)
class Recipient:
    """One member whose rules are evaluated, with what per-user conditions read (their
    localpart and display name also in lower case, for the substring tests that run
    once per member and event)."""

    user_id: str
    display_name: str | None = None  # in the event's room
    localpart: str = field(init=False)
    lower_localpart: str = field(init=False)
    lower_display_name: str = field(init=False)

    def __post_init__(self) -> None:
        localpart = self.user_id.removeprefix("@").partition(":")[0]
        object.__setattr__(self, "localpart", localpart)
        object.__setattr__(self, "lower_localpart", localpart.lower())
        object.__setattr__(self, "lower_display_name", (self.display_name or "").lower())


# Outcomes


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a matched rule does: its actions as served, and what they mean."""

    rule_id: str
    actions: tuple[Any, ...]
    notify: bool
    highlight: bool
    tweaks: Mapping[str, Any] = field(default_factory=dict)
    # The actions as JSON, encoded once for every notification recorded with them.
    actions_json: str = "[]"


def clean_actions(actions: Iterable[Any]) -> list[Any]:
    """The actions without the historical ones (dont_notify, coalesce)."""
    return [a for a in actions if not (isinstance(a, str) and a in HISTORICAL_ACTIONS)]


def outcome_of(rule_id: str, actions: Sequence[Any]) -> Outcome:
    kept = clean_actions(actions)
    tweaks: dict[str, Any] = {}
    for action in kept:
        if isinstance(action, Mapping) and isinstance(action.get("set_tweak"), str):
            name = action["set_tweak"]
            # "If a highlight tweak is given with no value, its value is defined to be true."
            tweaks[name] = action.get("value", True) if name == "highlight" else action.get("value")
    return Outcome(
        rule_id,
        tuple(kept),
        "notify" in kept,
        tweaks.get("highlight") is True,
        tweaks,
        json.dumps(kept),
    )


# Conditions

# A shared check decides for every recipient: (event, room) -> bool.
SharedCheck = Callable[[EventView, RoomFacts], bool]
# A per-user check: (event, recipient) -> bool, after `possible` said it may hold for someone.
UserCheck = Callable[[EventView, Recipient], bool]


@dataclass(frozen=True, slots=True)
class _UserCondition:
    possible: SharedCheck  # False: it holds for nobody, whoever they are
    check: UserCheck


def _never(_view: EventView, _room: RoomFacts) -> bool:
    return False


def _always(_view: EventView, _room: RoomFacts) -> bool:
    return True


def _event_match(condition: Mapping[str, Any]) -> SharedCheck | _UserCondition:
    key, pattern = condition.get("key"), condition.get("pattern")
    if not isinstance(key, str) or not isinstance(pattern, str):
        return _never
    words = key == "content.body"
    if pattern == USER_ID:

        def is_user(view: EventView, recipient: Recipient) -> bool:
            value = view.string(key)
            return value is not None and value.lower() == recipient.user_id.lower()

        return _UserCondition(lambda view, _room: view.string(key) is not None, is_user)
    if pattern == LOCALPART:

        def has_localpart(view: EventView, recipient: Recipient) -> bool:
            value = view.string(key)
            if value is None:
                return False
            if words:
                return _contains_words(
                    recipient.localpart, recipient.lower_localpart, value, view.body_lower() or ""
                )
            return value.lower() == recipient.lower_localpart

        return _UserCondition(lambda view, _room: view.string(key) is not None, has_localpart)
    regex = glob_regex(pattern, words)
    if words:
        return lambda view, _room: (
            (value := view.string(key)) is not None and bool(regex.search(value))
        )
    return lambda view, _room: (
        (value := view.string(key)) is not None and bool(regex.fullmatch(value))
    )


def _property_is(condition: Mapping[str, Any]) -> SharedCheck:
    key, expected = condition.get("key"), condition.get("value", _ABSENT)
    if not isinstance(key, str) or not _is_simple_json(expected):
        return _never

    def check(view: EventView, _room: RoomFacts) -> bool:
        found = view.value(key)
        return _is_simple_json(found) and _same_value(found, expected)

    return check


def _property_contains(condition: Mapping[str, Any]) -> SharedCheck | _UserCondition:
    key, expected = condition.get("key"), condition.get("value", _ABSENT)
    if not isinstance(key, str) or not _is_simple_json(expected):
        return _never

    def array(view: EventView) -> list[Any] | None:
        found = view.value(key)
        return found if isinstance(found, list) else None

    if expected == USER_ID:

        def names_user(view: EventView, recipient: Recipient) -> bool:
            return recipient.user_id in (array(view) or ())

        return _UserCondition(lambda view, _room: bool(array(view)), names_user)

    def contains(view: EventView, _room: RoomFacts) -> bool:
        return any(_same_value(item, expected) for item in array(view) or ())

    return contains


def _display_name(view: EventView, recipient: Recipient) -> bool:
    lower_name = recipient.lower_display_name
    if not lower_name or lower_name not in (view.body_lower() or ""):
        return False
    body = view.string("content.body")
    return body is not None and _contains_words(
        recipient.display_name or "", lower_name, body, view.body_lower() or ""
    )


_DISPLAY_NAME: Final = _UserCondition(
    lambda view, _room: view.string("content.body") is not None, _display_name
)

_MEMBER_COUNT = re.compile(r"(==|<=|>=|<|>)?([0-9]+)")
_COMPARE: Final[dict[str, Callable[[int, int], bool]]] = {
    "==": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
}


def _member_count(condition: Mapping[str, Any]) -> SharedCheck:
    found = _MEMBER_COUNT.fullmatch(str(condition.get("is", "")))
    if found is None:
        return _never
    compare, number = _COMPARE[found.group(1) or "=="], int(found.group(2))
    return lambda _view, room: compare(room.member_count, number)


def _notification_permission(condition: Mapping[str, Any]) -> SharedCheck:
    key = condition.get("key")
    if not isinstance(key, str):
        return _never
    return lambda view, room: room.sender_may_notify(view.sender, key)


def compile_condition(condition: object) -> SharedCheck | _UserCondition:
    """One condition; an unknown or malformed one never matches (the spec)."""
    if not isinstance(condition, Mapping):
        return _never
    kind = condition.get("kind")
    if kind == "event_match":
        return _event_match(condition)
    if kind == "event_property_is":
        return _property_is(condition)
    if kind == "event_property_contains":
        return _property_contains(condition)
    if kind == "contains_display_name":
        return _DISPLAY_NAME
    if kind == "room_member_count":
        return _member_count(condition)
    if kind == "sender_notification_permission":
        return _notification_permission(condition)
    return _never


# Rulesets


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule_id: str
    shared: tuple[SharedCheck, ...]
    per_user: tuple[_UserCondition, ...]
    outcome: Outcome
    legacy_mention: bool  # skipped for events with m.mentions

    def holds_for_all(self, view: EventView, room: RoomFacts) -> bool:
        """Whether its shared conditions hold (and its per-user ones may, for someone)."""
        if self.legacy_mention and view.has_mentions:
            return False
        return all(check(view, room) for check in self.shared) and all(
            condition.possible(view, room) for condition in self.per_user
        )

    def holds_for(self, view: EventView, recipient: Recipient) -> bool:
        for condition in self.per_user:
            if not condition.check(view, recipient):
                return False
        return True


@dataclass(frozen=True, slots=True)
class CompiledRules:
    rules: tuple[CompiledRule, ...]


def _conditions_of(kind: str, rule: Mapping[str, Any]) -> list[object]:
    rule_id = rule.get("rule_id")
    if kind == "content":
        return [{"kind": "event_match", "key": "content.body", "pattern": rule.get("pattern")}]
    if kind == "room":
        return [{"kind": "event_match", "key": "room_id", "pattern": _literal(rule_id)}]
    if kind == "sender":
        return [{"kind": "event_match", "key": "sender", "pattern": _literal(rule_id)}]
    conditions = rule.get("conditions", [])
    return list(conditions) if isinstance(conditions, list) else [{"kind": "malformed"}]


def _literal(rule_id: object) -> object:
    # Room and sender rules name their room or user exactly: no wildcards.
    return _escape_glob(rule_id) if isinstance(rule_id, str) else rule_id


def compile_ruleset(ruleset: Mapping[str, Any]) -> CompiledRules:
    """Compile a global ruleset ({kind: [rule, ...]}) into evaluation order.

    `.m.rule.master` goes first, above every user-defined rule (the spec); the
    rest keep their kind's order and their order within it."""
    ordered: list[tuple[str, Mapping[str, Any]]] = []
    for kind in KINDS:
        rules = ruleset.get(kind)
        for rule in rules if isinstance(rules, list) else ():
            if isinstance(rule, Mapping):
                ordered.append((kind, rule))
    ordered.sort(key=lambda item: item[1].get("rule_id") != ".m.rule.master")
    compiled: list[CompiledRule] = []
    for kind, rule in ordered:
        rule_id = rule.get("rule_id")
        actions = rule.get("actions")
        if rule.get("enabled") is False or not isinstance(rule_id, str):
            continue
        if not isinstance(actions, list):
            continue
        shared: list[SharedCheck] = []
        per_user: list[_UserCondition] = []
        for condition in _conditions_of(kind, rule):
            check = compile_condition(condition)
            (per_user if isinstance(check, _UserCondition) else shared).append(check)  # type: ignore[arg-type]
        compiled.append(
            CompiledRule(
                rule_id,
                tuple(shared),
                tuple(per_user),
                outcome_of(rule_id, actions),
                rule_id in LEGACY_MENTION_RULES,
            )
        )
    return CompiledRules(tuple(compiled))


@dataclass(frozen=True, slots=True)
class Plan:
    """What is left to decide per member once an event's shared conditions are decided:
    the rules whose per-user conditions may hold, in order, before `settled`, the
    outcome of the first rule that holds for everyone (None: no such rule)."""

    candidates: tuple[CompiledRule, ...]
    settled: Outcome | None

    def outcome_for(self, view: EventView, recipient: Recipient) -> Outcome | None:
        for rule in self.candidates:
            for condition in rule.per_user:
                if not condition.check(view, recipient):
                    break
            else:
                return rule.outcome
        return self.settled


def plan(compiled: CompiledRules, view: EventView, room: RoomFacts) -> Plan:
    """Decide the shared conditions of the event once, for every member on `compiled`."""
    candidates: list[CompiledRule] = []
    for rule in compiled.rules:
        if not rule.holds_for_all(view, room):
            continue
        if not rule.per_user:
            return Plan(tuple(candidates), rule.outcome)
        candidates.append(rule)
    return Plan(tuple(candidates), None)


def evaluate(
    compiled: CompiledRules, view: EventView, room: RoomFacts, recipient: Recipient
) -> Outcome | None:
    """The outcome of the first rule the event matches for `recipient`, or None."""
    return plan(compiled, view, room).outcome_for(view, recipient)


def evaluate_group(
    compiled: CompiledRules,
    view: EventView,
    room: RoomFacts,
    recipients: Sequence[Recipient],
) -> dict[str, Outcome]:
    """The outcome for each of `recipients` (who share `compiled`) the event matches a
    rule for; those it matches none for are left out."""
    decided = plan(compiled, view, room)
    outcomes: dict[str, Outcome] = {}
    undecided = list(recipients)
    for rule in decided.candidates:
        if not undecided:
            break
        still: list[Recipient] = []
        outcome = rule.outcome
        if len(rule.per_user) == 1:
            # The usual case (a name or a mention): one check per member, no loop inside.
            check = rule.per_user[0].check
            for recipient in undecided:
                if check(view, recipient):
                    outcomes[recipient.user_id] = outcome
                else:
                    still.append(recipient)
        else:
            for recipient in undecided:
                if rule.holds_for(view, recipient):
                    outcomes[recipient.user_id] = outcome
                else:
                    still.append(recipient)
        undecided = still
    if decided.settled is not None and undecided:
        outcomes.update(dict.fromkeys([r.user_id for r in undecided], decided.settled))
    return outcomes
