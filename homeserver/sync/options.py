"""What a sync's filter asks for, reduced to what the sync builder decides on.

`options_from_filter` turns a (cached, immutable) Filter into `SyncOptions`
once; `hiding` and its helpers narrow them to leave out what the syncing user's
ignored users send (m.ignored_user_list), and what shadow-banned users sent while
banned (rooms/shadow_bans.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from homeserver.events.model import Event, JsonDict
from homeserver.rooms.shadow_bans import ShadowBans
from homeserver.sync.filters import Filter, RoomEventFilter, apply_event_fields


def everything(_: Any) -> bool:
    """The test of a filter that constrains nothing."""
    return True


def nothing(_: Any) -> bool:
    return False


@dataclass(frozen=True)
class SyncOptions:
    """What a sync filter asks for, reduced to what the builder decides on."""

    timeline_limit: int = 10
    allows_room: Callable[[str], bool] = everything
    timeline_allows: Callable[[Event], bool] = everything
    # The timeline filter when it constrains anything (for the database to apply), else None.
    timeline_filter: RoomEventFilter | None = None
    state_allows: Callable[[Event], bool] = everything
    ephemeral_allows: Callable[[str], bool] = everything
    account_data_allows: Callable[[str], bool] = everything
    # The filter's `presence` section: whether any m.presence is wanted, and whose.
    wants_presence: bool = True
    presence_allows: Callable[[str], bool] = everything
    include_leave: bool = False
    # Senders the user ignores (m.ignored_user_list): set by the builder, not a filter.
    ignored: frozenset[str] = frozenset()
    # Whether an event is hidden from the user whatever the filter: sent by one they
    # ignore, or by one shadow-banned then (unread counts skip these too).
    hides: Callable[[Event], bool] = nothing
    lazy_load_members: bool = False
    # With lazy loading: send a member again though this device was sent it before.
    include_redundant_members: bool = False
    # event_fields: what of each served event to keep (None: all of it).
    shape: Callable[[JsonDict], JsonDict] | None = None
    # event_format: federation: events as the log holds them, not in client form.
    federation_format: bool = False
    # Events with their room ID (the v1 endpoints' form; /sync's leaves it out).
    include_room_id: bool = False
    # Whether to-device messages are delivered (and those before `since` deleted): not
    # by the v1 endpoints, which carry none.
    to_device: bool = True
    # Counts per thread (`unread_thread_notifications`), or one per room.
    unread_thread_notifications: bool = False


# Options of the filters recently used, by the identity of the (cached, immutable) Filter;
# the Filter is held so its id is not reused while its entry lives.
_OPTIONS: dict[int, tuple[Filter, SyncOptions]] = {}
_OPTIONS_CACHE_SIZE = 10_000


def options_from_filter(sync_filter: Filter) -> SyncOptions:
    cached = _OPTIONS.get(id(sync_filter))
    if cached is not None and cached[0] is sync_filter:
        return cached[1]
    options = _options_from_filter(sync_filter)
    _OPTIONS[id(sync_filter)] = (sync_filter, options)
    while len(_OPTIONS) > _OPTIONS_CACHE_SIZE:
        _OPTIONS.pop(next(iter(_OPTIONS)))
    return options


def _event_test(event_filter: RoomEventFilter) -> Callable[[Event], bool]:
    """The filter's `allows_event`, or `everything` when it constrains nothing (the
    test runs for every event of every sync)."""
    if (
        event_filter.rooms is None
        and not event_filter.not_rooms
        and event_filter.types is None
        and not event_filter.not_types
        and event_filter.senders is None
        and not event_filter.not_senders
        and event_filter.contains_url is None
    ):
        return everything
    return event_filter.allows_event


def _shaping(fields: list[str] | None) -> Callable[[JsonDict], JsonDict] | None:
    if fields is None:
        return None

    def shape(served: JsonDict) -> JsonDict:
        return apply_event_fields(served, fields)

    return shape


def _options_from_filter(sync_filter: Filter) -> SyncOptions:
    room = sync_filter.room
    return SyncOptions(
        timeline_limit=sync_filter.timeline_limit,
        allows_room=room.allows_room if room.rooms is not None or room.not_rooms else everything,
        timeline_allows=_event_test(room.timeline),
        timeline_filter=room.timeline if _event_test(room.timeline) is not everything else None,
        state_allows=_event_test(room.state),
        ephemeral_allows=room.ephemeral.allows_type,
        account_data_allows=sync_filter.account_data.allows_type,
        wants_presence=sync_filter.presence.allows_type("m.presence"),
        presence_allows=sync_filter.presence.allows_sender,
        include_leave=room.include_leave,
        lazy_load_members=room.state.lazy_load_members,
        include_redundant_members=room.state.include_redundant_members,
        shape=_shaping(sync_filter.event_fields),
        federation_format=sync_filter.event_format == "federation",
        unread_thread_notifications=room.timeline.unread_thread_notifications,
    )


def hiding(
    options: SyncOptions, ignored: frozenset[str], shadow_bans: ShadowBans, user_id: str
) -> SyncOptions:
    """Options leaving out what ignored users send: timeline events (not state, as in
    Synapse, so the room's members stay right), invites and receipts; and the timeline
    events shadow-banned users sent while banned, unless `user_id`'s own."""
    if not ignored and not shadow_bans.periods:
        return options
    allows = options.timeline_allows

    def hides(event: Event) -> bool:
        return (not event.is_state and event.sender in ignored) or shadow_bans.hides(event, user_id)

    def timeline_allows(event: Event) -> bool:
        return not hides(event) and allows(event)

    return replace(options, timeline_allows=timeline_allows, ignored=ignored, hides=hides)


def uncounted(options: SyncOptions) -> Callable[[Event], bool]:
    """The events no unread count of the user counts: every event of one they ignore (as
    push/evaluation.may_notify: state too), and every event hidden from them."""
    ignored, hides = options.ignored, options.hides
    if not ignored and hides is nothing:
        return nothing
    return lambda event: event.sender in ignored or hides(event)


def unignored(user_ids: list[str], options: SyncOptions) -> list[str]:
    """Typing users without those the syncing user ignores."""
    if not options.ignored:
        return user_ids
    return [user_id for user_id in user_ids if user_id not in options.ignored]


def without_readers(receipts: dict[str, JsonDict], ignored: frozenset[str]) -> dict[str, JsonDict]:
    """m.receipt contents ({event: {type: {user: receipt}}}) without the ignored users'."""
    if not ignored:
        return receipts
    kept: dict[str, JsonDict] = {}
    for room_id, content in receipts.items():
        for event_id, by_type in content.items():
            for receipt_type, by_user in by_type.items():
                readers = {user: r for user, r in by_user.items() if user not in ignored}
                if readers:
                    kept.setdefault(room_id, {}).setdefault(event_id, {})[receipt_type] = readers
    return kept
