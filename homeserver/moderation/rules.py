"""The shapes of the moderation chain's report facts, decided under the append lock.

Who may report what (only what the reporter can see) is decided before the
append by the report service, and who may delete a report by the admin API's
check: the rules here check shapes only.
"""

from __future__ import annotations

from homeserver.errors import forbidden
from homeserver.events import types
from homeserver.events.content.reports import parse_report_fact
from homeserver.events.model import Draft
from homeserver.log.rules import MODERATION, ChainRules
from homeserver.projections.room_state import RoomState


def authorize_report_fact(state: RoomState, draft: Draft) -> None:
    """A report, or its deletion, is a fact of its own (its ID is its position)."""
    if draft.state_key is not None:
        raise forbidden("report facts are not state")
    parse_report_fact(draft.type, draft.content)


def register(rules: ChainRules) -> None:
    rules.add(MODERATION, {*types.REPORT_TYPES, types.REPORT_DELETED}, authorize_report_fact)
