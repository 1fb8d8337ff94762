"""What the push follower and the sync counts share: how an event is evaluated for a member.

Both ask the same question of an event and a member — does it notify them, and
is it a highlight — and must answer alike, or a badge would jump when sync
moves from counting the follower's rows to counting by itself. So the pieces
live here once:

- `RulesBook` compiles each user's rules, one shared compiled ruleset for
  everyone on the server defaults (per kind of account), one per user who
  changed theirs;
- `counts_for` says who is never notified of an event: its sender, and those
  who ignore the sender;
- `thread_of` names the thread an event counts in ("main", or its root).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from homeserver.events import types
from homeserver.events.model import Event
from homeserver.push import ruleset as rules_of
from homeserver.push.default_rules import is_device_account
from homeserver.push.rules import CompiledRules, EventView, RoomFacts, compile_ruleset
from homeserver.rooms.power_levels import PowerLevels

MAIN_THREAD: Final = "main"
THREAD_RELATION: Final = "m.thread"


def view_of(event: Event) -> EventView:
    fields: dict[str, Any] = {
        "type": event.type,
        "content": event.content,
        "sender": event.sender,
        "room_id": event.room_id,
        "event_id": event.event_id,
    }
    if event.state_key is not None:
        fields["state_key"] = event.state_key
    return EventView(fields)


def thread_of(event: Event) -> str:
    """The thread an event counts in: its root for a reply in a thread, else "main"."""
    relates_to = event.content.get("m.relates_to")
    if isinstance(relates_to, Mapping) and relates_to.get("rel_type") == THREAD_RELATION:
        root = relates_to.get("event_id")
        if isinstance(root, str):
            return root
    return MAIN_THREAD


def may_notify(event: Event, user_id: str, ignored: frozenset[str]) -> bool:
    """Whether rules are evaluated for `user_id` at all: never for their own events, nor
    for events of users they ignore."""
    return event.sender != user_id and event.sender not in ignored


def room_facts(
    member_count: int,
    power: Mapping[str, Any] | None,
    creator: str | None,
    create: Mapping[str, Any] | None = None,
) -> RoomFacts:
    """What rules read of a room: its size, and its levels (with a version 12 room's
    creators above them all, for `sender_notification_permission`)."""
    return RoomFacts(member_count, PowerLevels.of_contents(creator, create, power))


def is_push_candidate(event: Event) -> bool:
    """Whether anyone's rules are asked about the event: room events, and the friend
    requests in account chains (push/default_rules.py)."""
    if types.is_room_chain(event.room_id):
        return True
    return types.is_account_chain(event.room_id) and event.type == types.FRIEND


# Compiled rulesets: how many custom ones are kept.
MAX_CUSTOM_RULESETS = 20_000


class RulesBook:
    """Compiled rulesets: the defaults' compiled once, each user's own by content."""

    def __init__(self) -> None:
        self._defaults: dict[bool, CompiledRules] = {}
        self._custom: dict[str, CompiledRules] = {}

    def compiled(self, user_id: str, stored: Mapping[str, Any] | None) -> CompiledRules:
        """The compiled rules of `user_id`, whose m.push_rules content is `stored`."""
        rules = rules_of.global_of(stored)
        if rules is None:
            device = is_device_account(user_id)
            found = self._defaults.get(device)
            if found is None:
                found = compile_ruleset(rules_of.effective_template(user_id, None))
                self._defaults[device] = found
            return found
        # Keyed by the merged template (the owner left open): users whose rules are
        # alike share one compiled ruleset.
        template = rules_of.effective_template(user_id, rules)
        key = json.dumps(template, sort_keys=True)
        found = self._custom.get(key)
        if found is None:
            found = compile_ruleset(template)
            self._custom[key] = found
            while len(self._custom) > MAX_CUSTOM_RULESETS:
                del self._custom[next(iter(self._custom))]
        return found
