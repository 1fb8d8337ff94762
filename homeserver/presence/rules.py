"""The presence of one user and how it changes: pure functions, no I/O, no clock.

A user's record holds what the spec's m.presence event shows (presence,
status_msg, currently_active), the times it is derived from (last activity,
last sign of a connected client) and the stream position of its last visible
change. Every change is a function `(record, now) -> record`; the stores apply
them atomically, the service decides when.

The model (README "Presence"):

- *Connected*: a client syncs with `set_presence` online or unavailable (or
  holds a sync stream). Syncing is not activity: the spec's last-active time
  counts pro-active events only (sending, reading, setting presence online).
  A sync that brings an offline user online is activity: they just came back.
- *Activity* (sending an event, a read receipt, `PUT presence` online) makes
  the user online and currently active.
- *Idle*: online with no activity for `idle_timeout` -> unavailable.
- *currently_active* turns false after `ACTIVE_WINDOW_MS` without activity.
- *Offline*: neither connected nor active for `offline_timeout`. Setting
  presence by PUT counts as a sign of a connected client, so a status set
  without syncing lasts that long too.
- A chosen `unavailable` (PUT, or `set_presence=unavailable`) is not undone by
  a background long-poll, only by activity: Element sets idle by PUT while its
  long-poll keeps running with the default `set_presence=online`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final, Literal

Presence = Literal["online", "unavailable", "offline"]
ONLINE: Final = "online"
UNAVAILABLE: Final = "unavailable"
OFFLINE: Final = "offline"
STATES: tuple[Presence, ...] = (ONLINE, UNAVAILABLE, OFFLINE)

# The spec's "currently_active": Synapse's LAST_ACTIVE_GRANULARITY, one minute.
ACTIVE_WINDOW_MS = 60_000
# How stale a stored last-sync or last-active time may get: writes of times
# alone (no visible change) happen at most this often per user.
MAX_TOUCH_INTERVAL_MS = 5_000


@dataclass(frozen=True, slots=True)
class Timeouts:
    idle_ms: int
    offline_ms: int

    @property
    def active_ms(self) -> int:
        return min(ACTIVE_WINDOW_MS, self.idle_ms)

    @property
    def touch_interval_ms(self) -> int:
        """Throttle of time-only writes, and the period of connection heartbeats:
        a quarter of the shortest timeout, so a connected user never times out."""
        return max(10, min(MAX_TOUCH_INTERVAL_MS, self.offline_ms // 4, self.active_ms // 4))


@dataclass(frozen=True, slots=True)
class UserPresence:
    presence: Presence = OFFLINE
    status_msg: str | None = None
    currently_active: bool = False
    last_active_ts: int = 0
    last_sync_ts: int = 0
    # Stream position of the last visible change (0: never changed).
    position: int = 0
    # When the user last chose their presence (PUT, or set_presence=unavailable):
    # activity from before then does not undo that choice.
    chosen_ts: int = 0

    def visible(self) -> tuple[str, str | None, bool]:
        """What a change must alter to be announced to room-mates."""
        return (self.presence, self.status_msg, self.currently_active)


NOBODY = UserPresence()


def synced(record: UserPresence, set_presence: str, now: int) -> UserPresence:
    """A client of the user syncs (or is still syncing, or just stopped) with `set_presence`."""
    record = replace(record, last_sync_ts=max(record.last_sync_ts, now))
    if set_presence == ONLINE and record.presence == OFFLINE:
        return replace(record, presence=ONLINE, currently_active=True, last_active_ts=now)
    if set_presence == UNAVAILABLE and record.presence != UNAVAILABLE:
        return replace(record, presence=UNAVAILABLE, currently_active=False, chosen_ts=now)
    return record


def still_connected(record: UserPresence, at: int) -> UserPresence | None:
    """A heartbeat: a client of the user was still connected at `at`. Only the time
    moves, which room-mates do not see; None when more would change (an offline
    user coming back online takes `synced`)."""
    if record.presence == OFFLINE:
        return None
    if record.last_sync_ts >= at:
        return record
    return replace(record, last_sync_ts=at)


def acted(record: UserPresence, now: int) -> UserPresence:
    """The user did something pro-active at `now`: sent an event, a receipt. Activity
    is noted after it happened (the service gathers it), so a presence the user chose
    after `now` stands: it only moves the last-active time. Nor does it bring an
    offline user online, as Synapse (`bump_presence_active_time`): a user with no
    client syncing is not there for room-mates to talk to; syncing, or saying so
    (`chosen`), brings them online."""
    if now < record.chosen_ts or record.presence == OFFLINE:
        return replace(record, last_active_ts=max(record.last_active_ts, now))
    return replace(
        record,
        presence=ONLINE,
        currently_active=True,
        last_active_ts=max(record.last_active_ts, now),
    )


def chosen(
    record: UserPresence, presence: Presence, status_msg: str | None, now: int
) -> UserPresence:
    """PUT /presence/{userId}/status: a client of the user is there now (connected).
    Setting online is activity too (the spec)."""
    record = replace(record, last_sync_ts=max(record.last_sync_ts, now))
    if presence == ONLINE:
        online = acted(replace(record, presence=ONLINE), now)
        return replace(online, status_msg=status_msg, chosen_ts=now)
    return replace(
        record, presence=presence, status_msg=status_msg, currently_active=False, chosen_ts=now
    )


def expired(record: UserPresence, now: int, timeouts: Timeouts) -> UserPresence:
    """The timeouts that have passed by `now`: offline, idle, no longer currently active."""
    if record.presence == OFFLINE:
        return record
    if now - max(record.last_sync_ts, record.last_active_ts) >= timeouts.offline_ms:
        return replace(record, presence=OFFLINE, currently_active=False)
    since_active = now - record.last_active_ts
    if record.presence == ONLINE and since_active >= timeouts.idle_ms:
        return replace(record, presence=UNAVAILABLE, currently_active=False)
    if record.currently_active and since_active >= timeouts.active_ms:
        return replace(record, currently_active=False)
    return record


def deadline(record: UserPresence, timeouts: Timeouts) -> int | None:
    """When `expired` would next change the record, or None (offline never times out)."""
    if record.presence == OFFLINE:
        return None
    due = max(record.last_sync_ts, record.last_active_ts) + timeouts.offline_ms
    if record.presence == ONLINE:
        due = min(due, record.last_active_ts + timeouts.idle_ms)
    if record.currently_active:
        due = min(due, record.last_active_ts + timeouts.active_ms)
    return due


def content(record: UserPresence, now: int) -> dict[str, Any]:
    """The m.presence content (and GET .../status body): status_msg only when set,
    last_active_ago only when the user was ever active (the spec's examples; nio
    and the JS SDK read both as optional)."""
    body: dict[str, Any] = {
        "presence": record.presence,
        "currently_active": record.currently_active,
    }
    if record.last_active_ts:
        body["last_active_ago"] = max(0, now - record.last_active_ts)
    if record.status_msg is not None:
        body["status_msg"] = record.status_msg
    return body
