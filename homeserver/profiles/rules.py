"""Who may change a profile fact, decided under the append lock."""

from __future__ import annotations

from homeserver.errors import forbidden
from homeserver.events import types
from homeserver.events.content.profile import parse_profile
from homeserver.events.model import Draft
from homeserver.log.rules import ACCOUNT, ChainRules
from homeserver.projections.room_state import RoomState


def authorize_profile(state: RoomState, draft: Draft) -> None:
    """Only its owner changes a profile, and only to a valid one."""
    if draft.sender != draft.room_id or draft.state_key != "":
        raise forbidden("Only its owner may change a profile.")
    parse_profile(draft.content)


def register(rules: ChainRules) -> None:
    rules.add(ACCOUNT, {types.PROFILE}, authorize_profile)
