"""Who may publish keys and signatures, decided under the append lock."""

from __future__ import annotations

from homeserver.errors import forbidden
from homeserver.events.content import e2ee as e2ee_content
from homeserver.events.model import Draft
from homeserver.log.rules import ACCOUNT, ChainRules
from homeserver.projections.room_state import RoomState


def authorize_key_fact(state: RoomState, draft: Draft) -> None:
    """Only their owner publishes an account's keys and signatures, well formed and about
    the owner (events/content/e2ee.py)."""
    if draft.sender != draft.room_id:
        raise forbidden("Only its owner may publish an account's keys.")
    e2ee_content.check_fact(draft.type, draft.room_id, draft.state_key, draft.content)


def register(rules: ChainRules) -> None:
    rules.add(ACCOUNT, e2ee_content.FACT_TYPES, authorize_key_fact)
