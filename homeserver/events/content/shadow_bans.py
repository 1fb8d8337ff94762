"""What a shadow-ban fact holds: `com.linkchat.shadow_ban`, state of the moderation chain
keyed by the user, written by the admin API with its audit record.

- `{"shadow_banned": true}`: the user is shadow-banned from this fact's position on;
- `{"shadow_banned": false, "banned_at": P}`: the ban whose fact is at position P
  ends here.

A ban is thus a stretch of the log, (P, end): the user's events in it stay hidden
from everyone else for good (rooms/shadow_bans.py), even once the ban is over.
JSON Schema: spec/events/com.linkchat.shadow_ban.json.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from homeserver.errors import invalid_param
from homeserver.events import types
from homeserver.events.content.parsing import parsed
from homeserver.events.model import Event


class ShadowBanContent(BaseModel):
    # A logged event is forever: keys this version does not know are kept.
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    shadow_banned: bool
    banned_at: int | None = Field(default=None, ge=1)


def parse_shadow_ban(content: dict[str, object]) -> ShadowBanContent:
    found = parsed(ShadowBanContent, content)
    if found.shadow_banned != (found.banned_at is None):
        raise invalid_param("banned_at names the ban an unban ends, and only then.")
    return found


@dataclass(frozen=True, slots=True)
class BanPeriod:
    """The stretch of the log in which `user_id` was (or is) shadow-banned: the positions
    after `banned_at` and before `unbanned_at` (None: still banned)."""

    user_id: str
    banned_at: int
    unbanned_at: int | None


def ban_period_of(event: Event) -> BanPeriod | None:
    """The ban period a shadow-ban fact starts or ends; None for any other event (or one
    that is not well formed: only well-formed facts are logged, read defensively)."""
    if (
        event.type != types.SHADOW_BAN
        or not types.is_moderation_chain(event.room_id)
        or event.state_key is None
    ):
        return None
    content = event.content
    if content.get("shadow_banned") is True:
        return BanPeriod(event.state_key, event.stream_position, None)
    banned_at = content.get("banned_at")
    if content.get("shadow_banned") is False and type(banned_at) is int:
        return BanPeriod(event.state_key, banned_at, event.stream_position)
    return None
