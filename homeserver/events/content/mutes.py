"""What a mute holds: `com.linkchat.mute`, state in the room keyed by the muted user.

The state key is the user's ID behind an underscore (`_@bob:example.com`,
`mute_state_key`): the room rules keep a state key that starts with `@` to the
user it names, and the muter is someone else.

Written by the server only (a StateEdit, moderation/rules.py), sent by whoever
muted or unmuted, in one append group with the `m.room.power_levels` change it
records:

- muted: `{"level": int, "previous_level": int, "expires_ts"?: int, "reason"?: str}`:
  the user's level while muted (below `events_default`), the level an unmute
  gives back, and when the server lifts it (ms since the epoch; none: until
  someone does);
- lifted: `{}`.

JSON Schema: spec/events/com.linkchat.mute.json (tests/test_mutes.py checks it
agrees with this model).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from homeserver.events.content.parsing import parsed
from homeserver.events.content.reports import MAX_REASON_LENGTH

MUTE_KEY_PREFIX = "_"

# Canonical JSON's integers.
_MIN_INT, _MAX_INT = -(2**53) + 1, 2**53 - 1


class MuteContent(BaseModel):
    # A logged event is forever: keys this version does not know are kept.
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    level: int = Field(ge=_MIN_INT, le=_MAX_INT)
    previous_level: int = Field(ge=_MIN_INT, le=_MAX_INT)
    expires_ts: int | None = Field(default=None, ge=0, le=_MAX_INT)
    reason: str | None = Field(default=None, max_length=MAX_REASON_LENGTH)


def mute_state_key(user_id: str) -> str:
    return MUTE_KEY_PREFIX + user_id


def muted_user(state_key: str | None) -> str | None:
    """The user a mute's state key names; None for a key that names none."""
    if state_key is None or not state_key.startswith(MUTE_KEY_PREFIX + "@"):
        return None
    return state_key.removeprefix(MUTE_KEY_PREFIX)


def parse_mute(content: Mapping[str, Any] | None) -> MuteContent | None:
    """The mute a content records; None when lifted (`{}`) or never made (None).
    M_INVALID_PARAM naming the field for one that fits neither."""
    if not content:
        return None
    return parsed(MuteContent, content)
