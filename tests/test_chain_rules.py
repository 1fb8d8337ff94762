"""The appender's rule book: what a capability registers decides only its own drafts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from homeserver.errors import MatrixError, forbidden
from homeserver.events.model import STATE_CHANGED, Draft, Event, StateEdit
from homeserver.log.rules import ACCOUNT, ROOM, ChainRules, Facts
from homeserver.projections.room_state import RoomState

ALICE = "@alice:example.org"
ROOM_ID = "!room:example.org"
SHOUT = "org.example.shout"


def _anything_goes(state: RoomState, draft: Draft, redacted_sender: str | None) -> None:
    return None


def _no_shouting(state: RoomState, draft: Draft) -> None:
    if draft.content.get("loud"):
        raise forbidden("no shouting")


def _event(draft: Draft, n: int) -> Event:
    pdu: dict[str, Any] = {
        "room_id": draft.room_id,
        "sender": draft.sender,
        "type": draft.type,
        "content": draft.content,
        "origin_server_ts": 0,
        "depth": n,
        "prev_events": [],
    }
    return Event.from_pdu(f"$event{n}", pdu, n)


@dataclass(frozen=True)
class ShoutCount:
    """Facts of a pretend capability: how many shouts the batch accepted so far."""

    shouts: int

    def accepted(self, event: Event) -> ShoutCount:
        return ShoutCount(self.shouts + 1) if event.type == SHOUT else self


async def _no_shouts(conn: Any, drafts: Sequence[Draft]) -> ShoutCount:
    return ShoutCount(0)


def _one_shout_a_batch(state: RoomState, draft: Draft, facts: ShoutCount) -> None:
    if facts.shouts >= 1:
        raise forbidden("one shout a batch")


async def test_a_registered_rule_decides_its_types_in_its_chain_only() -> None:
    rules = ChainRules(_anything_goes)
    rules.add(ROOM, {SHOUT}, _no_shouting)
    facts = await _facts(rules)
    loud = {"loud": True}
    with pytest.raises(MatrixError):
        rules.authorize(RoomState(ROOM_ID), Draft(ROOM_ID, ALICE, SHOUT, loud), None, facts)
    # Another type in the same chain, and the same type in an account chain, pass.
    rules.authorize(RoomState(ROOM_ID), Draft(ROOM_ID, ALICE, "m.room.message", loud), None, facts)
    rules.authorize(RoomState(ALICE), Draft(ALICE, ALICE, SHOUT, loud, ""), None, facts)


async def test_a_rule_for_every_type_decides_every_draft_of_its_chain() -> None:
    rules = ChainRules(_anything_goes)
    rules.add_for_every_type(ROOM, _no_shouting)
    facts = await _facts(rules)
    loud = {"loud": True}
    for event_type in (SHOUT, "m.room.message", "m.reaction"):
        with pytest.raises(MatrixError):
            rules.authorize(
                RoomState(ROOM_ID), Draft(ROOM_ID, ALICE, event_type, loud), None, facts
            )
    rules.authorize(RoomState(ALICE), Draft(ALICE, ALICE, SHOUT, loud, ""), None, facts)


async def test_a_rule_sees_its_facts_as_of_its_draft_in_the_batch() -> None:
    rules = ChainRules(_anything_goes)
    rules.add_with_facts(ROOM, {SHOUT}, _one_shout_a_batch, _no_shouts)
    facts = await _facts(rules)
    first = Draft(ROOM_ID, ALICE, SHOUT, {})
    rules.authorize(RoomState(ROOM_ID), first, None, facts)
    after = facts.accepted(_event(first, 1))
    with pytest.raises(MatrixError):
        rules.authorize(RoomState(ROOM_ID), Draft(ROOM_ID, ALICE, SHOUT, {}), None, after)
    # What the batch accepted does not change the facts it started from.
    rules.authorize(RoomState(ROOM_ID), Draft(ROOM_ID, ALICE, SHOUT, {}), None, facts)


async def test_the_chain_rule_runs_before_a_capability_rule() -> None:
    def chain_refuses(state: RoomState, draft: Draft, redacted_sender: str | None) -> None:
        raise MatrixError(400, "M_CHAIN", "the chain refuses")

    rules = ChainRules(chain_refuses)
    rules.add(ACCOUNT, {SHOUT}, _no_shouting)
    with pytest.raises(MatrixError) as refused:
        rules.authorize(
            RoomState(ALICE),
            Draft(ALICE, ALICE, SHOUT, {"loud": True}, ""),
            None,
            await _facts(rules),
        )
    assert refused.value.errcode == "M_CHAIN"


async def test_an_edit_of_state_replaced_meanwhile_is_refused() -> None:
    rules = ChainRules(_anything_goes)
    edit = StateEdit(ALICE, ALICE, SHOUT, {}, state_key="", replaces="$gone")
    with pytest.raises(MatrixError) as refused:
        rules.authorize(RoomState(ALICE), edit, None, await _facts(rules))
    assert refused.value.errcode == STATE_CHANGED


async def test_a_chain_nobody_knows_cannot_get_rules() -> None:
    with pytest.raises(ValueError):
        ChainRules(_anything_goes).add("+", {SHOUT}, _no_shouting)


async def _facts(rules: ChainRules) -> Facts:
    """The facts of an empty batch, read without a database (the loaders here need none)."""
    return await rules.load_facts(None, [])  # type: ignore[arg-type]
