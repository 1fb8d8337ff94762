"""Pure reducers from events to projection-table changes, shared by live append and replay."""

from __future__ import annotations

from homeserver.events.model import Event
from homeserver.projections import (
    accounts,
    admin,
    relations,
    room_directory,
    rooms,
    search,
    threepids,
)
from homeserver.projections import device_control as device_commands
from homeserver.projections import e2ee as e2ee_keys
from homeserver.projections import friends as friend_relations
from homeserver.projections import media as media_records
from homeserver.projections import mutes as room_mutes
from homeserver.projections import profiles as user_profiles
from homeserver.projections import reports as moderation_reports
from homeserver.projections import room_blocks as blocked_rooms
from homeserver.projections import shadow_bans as shadow_ban_periods
from homeserver.projections.changes import Change

_REDUCERS = (
    rooms.changes,
    relations.changes,
    accounts.changes,
    friend_relations.changes,
    media_records.changes,
    search.changes,
    room_directory.changes,
    user_profiles.changes,
    device_commands.changes,
    e2ee_keys.changes,
    moderation_reports.changes,
    room_mutes.changes,
    shadow_ban_periods.changes,
    blocked_rooms.changes,
    admin.changes,
    threepids.changes,
)


def project(event: Event) -> list[Change]:
    """Every projection change one event makes, in order."""
    result: list[Change] = []
    for reducer in _REDUCERS:
        result.extend(reducer(event))
    return result
