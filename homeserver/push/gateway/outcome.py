"""What a provider said of one push, and the message both providers build from a notification."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from homeserver.push.default_rules import DATA_ONLY_TWEAK

# The tweak a homeserver sets for a notification the app should not show (ours:
# device commands wake an agent, they do not ring).
DATA_ONLY: Final = DATA_ONLY_TWEAK
ENCRYPTED: Final = "m.room.encrypted"
MAX_BODY_CHARS: Final = 1_000


class Delivered(enum.Enum):
    SENT = "sent"
    REJECTED = "rejected"  # the token is dead: the homeserver removes the pusher
    FAILED = "failed"  # this push will not go through (a bad request); not retried
    TEMPORARY = "temporary"  # the provider is unreachable or overloaded: retry later


@dataclass(frozen=True, slots=True)
class Push:
    """One notification for one device, as the providers' messages are built from it."""

    notification: Mapping[str, Any]
    device: Mapping[str, Any]

    @property
    def pushkey(self) -> str:
        return str(self.device.get("pushkey", ""))

    @property
    def tweaks(self) -> Mapping[str, Any]:
        tweaks = self.device.get("tweaks")
        return tweaks if isinstance(tweaks, Mapping) else {}

    @property
    def unread(self) -> int | None:
        counts = self.notification.get("counts")
        unread = counts.get("unread") if isinstance(counts, Mapping) else None
        return unread if isinstance(unread, int) and not isinstance(unread, bool) else None

    @property
    def badge_only(self) -> bool:
        """A notification of the badge alone (the user read something): no event."""
        return "event_id" not in self.notification and self.unread is not None

    @property
    def high_priority(self) -> bool:
        return bool(self.notification.get("prio", "high") != "low")

    def visible(self, app_data_only: bool) -> tuple[str, str] | None:
        """(title, body) of the notification to show, or None for a data-only push: when
        the app asks for data only, the room is encrypted (the server cannot read it),
        the pusher sent no content (`event_id_only`) or the rule said so (a device
        command)."""
        if app_data_only or self.tweaks.get(DATA_ONLY) is True:
            return None
        if self.notification.get("type") == ENCRYPTED:
            return None
        content = self.notification.get("content")
        body = content.get("body") if isinstance(content, Mapping) else None
        if not isinstance(body, str):
            return None
        sender = self.notification.get("sender_display_name") or self.notification.get("sender")
        room = self.notification.get("room_name")
        title = f"{sender} ({room})" if room and room != sender else str(sender or "")
        return title, body[:MAX_BODY_CHARS]

    def data(self) -> dict[str, str]:
        """What the app reads to fetch the event: room, event and counts (strings: FCM
        data values are strings)."""
        found: dict[str, str] = {}
        for key in ("event_id", "room_id", "type", "sender", "prio"):
            value = self.notification.get(key)
            if isinstance(value, str):
                found[key] = value
        if self.unread is not None:
            found["unread_count"] = str(self.unread)
        return found
