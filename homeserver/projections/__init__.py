"""Pure reducers from events to projection-table changes, shared by live append and replay."""

from __future__ import annotations

from homeserver.events.model import Event
from homeserver.projections import accounts, relations, rooms
from homeserver.projections.changes import Change

_REDUCERS = (rooms.changes, relations.changes, accounts.changes)


def project(event: Event) -> list[Change]:
    """Every projection change one event makes, in order."""
    result: list[Change] = []
    for reducer in _REDUCERS:
        result.extend(reducer(event))
    return result
