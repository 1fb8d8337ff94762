"""A user's push rules: the stored ruleset merged with the server defaults, and its edits.

A user's rules are a fact in their account chain: the `m.push_rules` account
data (a `com.linkchat.account_data` state event), whose content is the whole
global ruleset as the client API serves it, written by each edit. So
`audit replay` rebuilds them, and `/sync` shows the new rules in
`account_data` after every change, as the spec asks.

Reading merges that with today's server defaults (`effective`): the user's own
rules as stored, in their order; every server-default rule as the code defines
it now, with the `enabled` and `actions` the user set on it. A default rule
added to the spec later reaches everyone, and nobody can change a default
rule's conditions or pattern. User rules come before the defaults of their kind,
except `.m.rule.master`, which is always first (the spec).

The edits (`put_rule`, `delete_rule`, `set_enabled`, `set_actions`) are pure:
they take the effective ruleset and return the new one to store, or raise the
spec's error.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from homeserver.errors import MatrixError, bad_json, invalid_param, not_found
from homeserver.push.default_rules import Rule, Ruleset, default_template, fill_in
from homeserver.push.rules import HISTORICAL_ACTIONS, KINDS

MASTER: Final = ".m.rule.master"
# Bounds on what a client may store, so a ruleset stays one modest event.
MAX_USER_RULES: Final = 500
MAX_RULE_ID_BYTES: Final = 255


def _user_rules(stored: Mapping[str, Any] | None, kind: str) -> list[Rule]:
    if stored is None:
        return []
    rules = stored.get(kind)
    return [
        copy.deepcopy(rule)
        for rule in (rules if isinstance(rules, list) else [])
        if isinstance(rule, dict)
        and isinstance(rule.get("rule_id"), str)
        and not rule["rule_id"].startswith(".")
    ]


def _overrides(stored: Mapping[str, Any] | None, kind: str) -> dict[str, Rule]:
    """The user's settings of default rules (enabled, actions), by rule ID."""
    if stored is None:
        return {}
    rules = stored.get(kind)
    return {
        rule["rule_id"]: rule
        for rule in (rules if isinstance(rules, list) else [])
        if isinstance(rule, dict)
        and isinstance(rule.get("rule_id"), str)
        and rule["rule_id"].startswith(".")
    }


def global_of(content: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The global ruleset in the content of `m.push_rules` account data."""
    if content is None:
        return None
    found = content.get("global")
    return found if isinstance(found, Mapping) else None


def effective_template(user_id: str, stored: Mapping[str, Any] | None) -> Ruleset:
    """What evaluation compiles: the merged ruleset, with the defaults' markers for the
    owner kept (the template itself, shared, when nothing is stored)."""
    template = default_template(user_id)
    if stored is None:
        return template
    merged: Ruleset = {}
    for kind in KINDS:
        settings = _overrides(stored, kind)
        defaults: list[Rule] = []
        for rule in template.get(kind, []):
            setting = settings.get(rule["rule_id"])
            if setting is not None:
                rule = {**rule}
                if isinstance(setting.get("enabled"), bool):
                    rule["enabled"] = setting["enabled"]
                if isinstance(setting.get("actions"), list):
                    rule["actions"] = setting["actions"]
            defaults.append(rule)
        own = _user_rules(stored, kind)
        if kind == "override" and defaults and defaults[0]["rule_id"] == MASTER:
            merged[kind] = [defaults[0], *own, *defaults[1:]]
        else:
            merged[kind] = [*own, *defaults]
    return merged


def effective(user_id: str, stored: Mapping[str, Any] | None) -> Ruleset:
    """The user's global ruleset as the client API serves it."""
    return fill_in(effective_template(user_id, stored), user_id)


def find(ruleset: Ruleset, kind: str, rule_id: str) -> Rule | None:
    return next((rule for rule in ruleset.get(kind, []) if rule["rule_id"] == rule_id), None)


def check_kind(scope: str, kind: str) -> None:
    if scope != "global":
        raise invalid_param(f"Unknown push rule scope {scope!r}; only 'global' exists.")
    if kind not in KINDS:
        raise invalid_param(f"Unknown push rule kind {kind!r}; one of {', '.join(KINDS)}.")


def check_actions(actions: object) -> list[Any]:
    """Valid actions, without the historical ones (which the spec says to strip)."""
    if not isinstance(actions, list):
        raise bad_json("actions: must be a list.")
    for action in actions:
        if isinstance(action, str):
            if action != "notify" and action not in HISTORICAL_ACTIONS:
                raise bad_json(f"actions: unrecognised action {action!r}.")
        elif isinstance(action, dict):
            if not isinstance(action.get("set_tweak"), str):
                raise bad_json("actions: an object action must be a set_tweak with a name.")
        else:
            raise bad_json("actions: each action is a string or a set_tweak object.")
    return [a for a in actions if not (isinstance(a, str) and a in HISTORICAL_ACTIONS)]


def _check_conditions(conditions: object) -> list[Any]:
    if not isinstance(conditions, list):
        raise bad_json("conditions: an override or underride rule needs a list of conditions.")
    for condition in conditions:
        if not isinstance(condition, dict) or not isinstance(condition.get("kind"), str):
            raise bad_json("conditions: each condition is an object with a 'kind'.")
    return conditions


def _check_new_rule_id(rule_id: str) -> None:
    if rule_id.startswith("."):
        raise invalid_param(
            "Rule IDs starting with '.' are reserved for server-default rules:"
            " only their 'enabled' and 'actions' can change."
        )
    if "/" in rule_id or "\\" in rule_id:
        raise invalid_param("A rule ID may not contain '/' or '\\'.")
    if not rule_id or len(rule_id.encode()) > MAX_RULE_ID_BYTES:
        raise invalid_param(f"A rule ID is 1 to {MAX_RULE_ID_BYTES} bytes long.")


def _new_rule(kind: str, rule_id: str, body: Mapping[str, Any]) -> Rule:
    if "actions" not in body:
        raise bad_json("A push rule needs 'actions'.")
    rule: Rule = {
        "rule_id": rule_id,
        "default": False,
        "enabled": True,
        "actions": check_actions(body["actions"]),
    }
    if kind in ("override", "underride"):
        if "conditions" not in body:
            raise bad_json(f"An {kind} rule needs 'conditions'.")
        rule["conditions"] = _check_conditions(body["conditions"])
    elif kind == "content":
        if not isinstance(body.get("pattern"), str):
            raise bad_json("A content rule needs a 'pattern' (a string).")
        rule["pattern"] = body["pattern"]
    return rule


def _not_relative(rule_id: str) -> MatrixError:
    # The spec's example error (400 M_UNKNOWN), also when naming a server-default rule.
    return MatrixError(400, "M_UNKNOWN", f"before/after rule not found: {rule_id}")


def put_rule(
    ruleset: Ruleset,
    kind: str,
    rule_id: str,
    body: Mapping[str, Any],
    *,
    before: str | None = None,
    after: str | None = None,
) -> Ruleset:
    """Add or replace a user-defined rule: first of its kind's user rules when new and
    unplaced, next-most important to `before`, next-less important to `after`."""
    _check_new_rule_id(rule_id)
    rule = _new_rule(kind, rule_id, body)
    rules = ruleset.get(kind, [])
    existing = find(ruleset, kind, rule_id)
    if existing is not None:
        rule["enabled"] = existing.get("enabled", True)
    own = [r for r in rules if not r.get("default") and r["rule_id"] != rule_id]
    if len(own) >= MAX_USER_RULES:
        raise MatrixError(400, "M_LIMIT_EXCEEDED", f"At most {MAX_USER_RULES} rules of a kind.")
    for relative in (before, after):
        if relative is not None and not any(r["rule_id"] == relative for r in own):
            raise _not_relative(relative)
    if before is not None:
        at = next(i for i, r in enumerate(own) if r["rule_id"] == before)
    elif after is not None:
        at = next(i for i, r in enumerate(own) if r["rule_id"] == after) + 1
    elif existing is not None:
        at = [r["rule_id"] for r in rules if not r.get("default")].index(rule_id)
    else:
        at = 0
    own.insert(at, rule)
    return _with_own(ruleset, kind, own)


def _with_own(ruleset: Ruleset, kind: str, own: list[Rule]) -> Ruleset:
    defaults = [r for r in ruleset.get(kind, []) if r.get("default")]
    if kind == "override" and defaults and defaults[0]["rule_id"] == MASTER:
        rules = [defaults[0], *own, *defaults[1:]]
    else:
        rules = [*own, *defaults]
    return {**ruleset, kind: rules}


def delete_rule(ruleset: Ruleset, kind: str, rule_id: str) -> Ruleset:
    rule = find(ruleset, kind, rule_id)
    if rule is None or rule.get("default"):
        # As Synapse: a server-default rule is not among the rules one can delete.
        raise not_found("The push rule was not found.")
    return {**ruleset, kind: [r for r in ruleset[kind] if r["rule_id"] != rule_id]}


def _changed(ruleset: Ruleset, kind: str, rule_id: str, **changes: Any) -> Ruleset:
    if find(ruleset, kind, rule_id) is None:
        raise not_found("The push rule was not found.")
    return {
        **ruleset,
        kind: [{**r, **changes} if r["rule_id"] == rule_id else r for r in ruleset[kind]],
    }


def set_enabled(ruleset: Ruleset, kind: str, rule_id: str, body: Mapping[str, Any]) -> Ruleset:
    enabled = body.get("enabled")
    if not isinstance(enabled, bool):
        raise bad_json("enabled: must be true or false.")
    return _changed(ruleset, kind, rule_id, enabled=enabled)


def set_actions(ruleset: Ruleset, kind: str, rule_id: str, body: Mapping[str, Any]) -> Ruleset:
    if "actions" not in body:
        raise bad_json("A push rule needs 'actions'.")
    return _changed(ruleset, kind, rule_id, actions=check_actions(body["actions"]))


def room_rules_copied(ruleset: Ruleset, old_room: str, new_room: str) -> Ruleset | None:
    """The ruleset with each user rule about `old_room` copied for `new_room` (a room
    upgrade), or None when there is none. As Synapse's copy_push_rules_from_room_to_room:
    a `room` rule (whose ID is the room) and every override or underride with a
    `room_id` condition on the old room; the copy's ID names the new room."""
    changed = False
    copied: Ruleset = dict(ruleset)
    for kind in KINDS:
        own = [r for r in ruleset.get(kind, []) if not r.get("default")]
        added: list[Rule] = []
        for rule in own:
            conditions = rule.get("conditions")
            about_room = (
                rule["rule_id"] == old_room
                if kind == "room"
                else (
                    isinstance(conditions, list)
                    and any(_names_room(c, old_room) for c in conditions)
                )
            )
            if not about_room:
                continue
            copy_id = (
                new_room
                if kind == "room" or old_room not in rule["rule_id"]
                else (rule["rule_id"].replace(old_room, new_room))
            )
            if find(ruleset, kind, copy_id) is not None:
                continue
            copy_rule = copy.deepcopy(rule)
            copy_rule["rule_id"] = copy_id
            if isinstance(conditions, list):
                copy_rule["conditions"] = [
                    {**c, "pattern": new_room} if _names_room(c, old_room) else c
                    for c in conditions
                ]
            added.append(copy_rule)
        if added:
            changed = True
            copied = _with_own(copied, kind, [*added, *own])
    return copied if changed else None


def _names_room(condition: object, room_id: str) -> bool:
    return (
        isinstance(condition, dict)
        and condition.get("key") == "room_id"
        and condition.get("pattern") == room_id
    )
