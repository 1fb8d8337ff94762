"""The rules the appender decides every draft by, under its lock; filled once at start-up.

rooms/chain_rules.py gives the rules of every chain's shape (the Matrix room
rules, account and alias facts); each capability then adds the rules of its
own event types, and the facts beyond a chain's state they need, in app.py
(`register` in its rules module), so a new capability adds rules without
editing rooms/ or the appender:

    rules = ChainRules(chain_rules.authorize)
    rules.add(ACCOUNT, {types.PROFILE}, authorize_profile)
    rules.add_with_facts(ROOM, DEVICE_TYPES, device_rules.authorize, load_command_facts)

A rule raises MatrixError to refuse a draft. Rules run after the chain's own
rules passed, in the order they were added.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Protocol, TypeVar, cast

import asyncpg

from homeserver.errors import forbidden
from homeserver.events.model import Draft, Event, StateEdit, state_changed
from homeserver.projections.room_state import RoomState

# Chains, by the sigil of their ID (events/types.py).
ROOM = "!"
ACCOUNT = "@"
ALIAS = "#"
MODERATION = "~"


class BatchFacts(Protocol):
    """What a capability's rules need beyond a chain's state (the status of the command
    a device result answers, whether an invitee blocked the inviter), read once per
    batch under the append lock.

    Immutable: `accepted` returns the facts as they are after one more event of
    the batch, so a group refused half-way leaves them as they were.
    """

    def accepted(self, event: Event) -> BatchFacts: ...


F = TypeVar("F", bound=BatchFacts)

# Reads the facts a batch's drafts need, in the batch's transaction, under the lock:
# cheap (no query) for a batch that needs none.
FactsLoader = Callable[[asyncpg.Connection, Sequence[Draft]], Awaitable[F]]
# chain_rule(state, draft, sender of the event a redaction targets): every chain's shape.
ChainRule = Callable[[RoomState, Draft, str | None], None]
Rule = Callable[[RoomState, Draft], None]
_Bound = Callable[[RoomState, Draft, "Facts"], None]


class Facts:
    """Every capability's facts for one batch, in the order their loaders were added."""

    __slots__ = ("parts",)

    def __init__(self, parts: tuple[BatchFacts, ...]) -> None:
        self.parts = parts

    def accepted(self, event: Event) -> Facts:
        parts = tuple(part.accepted(event) for part in self.parts)
        if all(new is old for new, old in zip(parts, self.parts, strict=True)):
            return self
        return Facts(parts)


class ChainRules:
    def __init__(self, chain_rule: ChainRule) -> None:
        self._chain_rule = chain_rule
        self._rules: dict[tuple[str, str], list[_Bound]] = {}
        self._every_type: dict[str, list[Rule]] = {}
        self._loaders: list[FactsLoader[BatchFacts]] = []

    def add(self, chain: str, event_types: Collection[str], rule: Rule) -> None:
        """Decide drafts of these types in chains of this kind (ROOM, ACCOUNT, ALIAS,
        MODERATION) by `rule`."""
        self._bind(chain, event_types, lambda state, draft, _facts: rule(state, draft))

    def add_for_every_type(self, chain: str, rule: Rule) -> None:
        """Decide every draft in chains of this kind by `rule` too (after the rules by type)."""
        self._check_chain(chain)
        self._every_type.setdefault(chain, []).append(rule)

    def add_with_facts(
        self,
        chain: str,
        event_types: Collection[str],
        rule: Callable[[RoomState, Draft, F], None],
        load: FactsLoader[F],
    ) -> None:
        """As `add`, and `rule` gets what `load` read for the batch, as of this draft."""
        slot = len(self._loaders)
        self._loaders.append(cast(FactsLoader[BatchFacts], load))
        self._bind(
            chain,
            event_types,
            lambda state, draft, facts: rule(state, draft, cast(F, facts.parts[slot])),
        )

    def _bind(self, chain: str, event_types: Collection[str], rule: _Bound) -> None:
        self._check_chain(chain)
        for event_type in event_types:
            self._rules.setdefault((chain, event_type), []).append(rule)

    @staticmethod
    def _check_chain(chain: str) -> None:
        if chain not in (ROOM, ACCOUNT, ALIAS, MODERATION):
            raise ValueError(f"no chain {chain!r}: ROOM, ACCOUNT, ALIAS or MODERATION")

    async def load_facts(self, conn: asyncpg.Connection, drafts: Sequence[Draft]) -> Facts:
        return Facts(tuple([await load(conn, drafts) for load in self._loaders]))

    def authorize(
        self, state: RoomState, draft: Draft, redacted_sender: str | None, facts: Facts
    ) -> None:
        """Raise MatrixError unless `draft` may be appended to the chain `state`."""
        # The one compare-and-set of every chain: an edit of state replaced meanwhile.
        if isinstance(draft, StateEdit):
            current = state.get(draft.type, draft.state_key or "")
            if (current.event_id if current is not None else None) != draft.replaces:
                raise state_changed(draft.type)
        self._chain_rule(state, draft, redacted_sender)
        chain = draft.room_id[:1]
        # Moderation chains hold only the types a capability gave rules for.
        if chain == MODERATION and (chain, draft.type) not in self._rules:
            raise forbidden(f"{draft.type} is not a moderation fact")
        for rule in self._rules.get((chain, draft.type), ()):
            rule(state, draft, facts)
        for every in self._every_type.get(chain, ()):
            every(state, draft)
