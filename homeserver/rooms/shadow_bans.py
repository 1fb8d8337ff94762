"""Shadow-bans: what a shadow-banned user sends reaches no one but themselves.

Why this mechanism. Synapse drops a shadow-banned user's events and answers with a
made-up event ID, so the user's own clients lose their messages on the next sync,
which tells them. Here a shadow-banned user's messages, reactions, edits and
replies are appended as usual (so they see them everywhere, as anyone sees their
own) and hidden from everyone else by one rule, `ShadowBans.hides`, asked wherever
events are served: rooms/access.py (`RoomAccess.sees`: /event, /context,
/messages, /relations, /threads), the sync options (both window sources, unread
counts), the push follower (push, /notifications), and in SQL by
store/shadow_bans.hidden_sql (search, bundled aggregations).

The rule is a function of the log alone: a ban is a stretch of it (after the ban
fact, before the unban fact), and an event is hidden when its sender was banned at
its position. So a replay rebuilds it, every process decides alike whatever it
learned when, and what was sent during a ban stays hidden after it (an unban does
not publish the spam).

What cannot be hidden that way is not appended, as Synapse does, and answered with
an event ID that names nothing (`fake_event_id`): state events (a room's name
changes for everyone), invites, and redactions of others' events (these change
what others see). Memberships (joins, leaves) go through: they are the room's
state, and Synapse lets them through too. Typing notifications are dropped.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import asyncpg

from homeserver.events.content.shadow_bans import BanPeriod, ban_period_of
from homeserver.events.model import Event
from homeserver.store import shadow_bans as shadow_ban_store

Periods = tuple[tuple[int, int | None], ...]  # (banned_at, unbanned_at), oldest first


def _no_periods() -> Mapping[str, Periods]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ShadowBans:
    """Every user's ban periods, as the log says up to some position (immutable)."""

    periods: Mapping[str, Periods] = field(default_factory=_no_periods)

    @classmethod
    def of(cls, periods: Iterable[BanPeriod]) -> ShadowBans:
        found: dict[str, dict[int, int | None]] = {}
        for period in periods:
            spans = found.setdefault(period.user_id, {})
            # An end, once known, stands (a ban fact read again after its unban).
            spans[period.banned_at] = period.unbanned_at or spans.get(period.banned_at)
        return cls(
            MappingProxyType({user: tuple(sorted(spans.items())) for user, spans in found.items()})
        )

    def hides(self, event: Event, viewer: str | None) -> bool:
        """Whether `event` is hidden from `viewer` (None: from everyone) because its sender
        was shadow-banned when it was sent. State is never hidden (the only state a
        shadow-banned user appends is their membership, which the room's state needs)."""
        spans = self.periods.get(event.sender)
        if spans is None or event.sender == viewer or event.state_key is not None:
            return False
        position = event.stream_position
        return any(start < position and (end is None or position < end) for start, end in spans)

    def is_banned(self, user_id: str) -> bool:
        spans = self.periods.get(user_id)
        return spans is not None and spans[-1][1] is None

    def with_events(self, events: Iterable[Event]) -> ShadowBans:
        """These bans once the events (in log order) are applied: the ban facts among
        them open or close periods; applying one twice changes nothing."""
        periods = [period for event in events if (period := ban_period_of(event)) is not None]
        if not periods:
            return self
        return ShadowBans.of([*self._as_periods(), *periods])

    def _as_periods(self) -> list[BanPeriod]:
        return [
            BanPeriod(user, start, end)
            for user, spans in self.periods.items()
            for start, end in spans
        ]


NO_SHADOW_BANS = ShadowBans()


async def load_shadow_bans(conn: asyncpg.Connection) -> ShadowBans:
    return ShadowBans.of(await shadow_ban_store.ban_periods(conn))


def fake_event_id() -> str:
    """An event ID that names nothing, shaped like a real one (a reference hash)."""
    return "$" + secrets.token_urlsafe(32)[:43]
