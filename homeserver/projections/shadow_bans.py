"""Shadow-ban periods, from the moderation chain's `com.linkchat.shadow_ban` facts: a ban
opens a row (user, banned_at) with no end, the unban naming it gives it its end."""

from __future__ import annotations

from homeserver.events.content.shadow_bans import ban_period_of
from homeserver.events.model import Event
from homeserver.projections.changes import SHADOW_BAN_PERIODS, Change, Upsert


def changes(event: Event) -> list[Change]:
    period = ban_period_of(event)
    if period is None:
        return []
    return [
        Upsert(
            SHADOW_BAN_PERIODS,
            {
                "user_id": period.user_id,
                "banned_at": period.banned_at,
                "unbanned_at": period.unbanned_at,
            },
        )
    ]
