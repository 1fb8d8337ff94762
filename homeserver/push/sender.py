"""The push follower: evaluates each event for the members who may see it, records the
notifications, and queues them for each member's pushers (log/followers.py).

`handle`, in the follower's transaction, for each event of the batch in order:

- who is asked: the members joined to the room at the event (the follower
  keeps each room's members as of the event it is at, so a member who joined
  later is not asked, one who left later still is), and the invitee of an
  invite. Those members see the event whatever the room's history visibility
  (rooms/visibility.py: a member joined at an event sees it). Never the
  sender, never a member who ignores the sender (push/evaluation.py). A friend
  request in an account chain asks its owner.
- their rules, compiled once per ruleset (push/evaluation.py, RulesBook) and
  evaluated per group of members sharing one (push/rules.py), so a post to a
  channel of 10,000 costs a handful of shared checks and two substring tests
  per subscriber.
- each notification is a row of `push_notifications` (GET /notifications and
  the unread counts of /sync read them) and, for each pusher of the member,
  a row of `push_outbox`: the Push Gateway API's notification, with the
  member's unread count at that event as its badge (the count after the
  batch, less what the batch notified them of after that event).

- a read receipt of the user (m.read or m.read.private), or their leaving a
  room or declining an invite (the badge counts the rooms they are in or
  invited to), that lowers the badge: a counts-only notification to each of
  their pushers (the Push
  Gateway API leaves out `event_id` "for notifications that only contain
  updated badge counts"), so a phone's badge drops when the user reads on
  another device. Only when the badge differs from the last one queued for
  that pusher (in memory: after a restart, the first receipt sends one), as
  Synapse does.

The rows commit with the follower's position: a crash loses or doubles none.
`lead` delivers the outbox (push/delivery.py): one sender per pusher, in order,
retried with backoff while its gateway is down, without holding up the others;
and it prunes notifications older than `push.notifications_kept_days`
(push/pruning.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from homeserver.account_data.ignore import ignored_user_ids
from homeserver.events import types
from homeserver.events.model import Event
from homeserver.log.followers import AfterCommit, Start
from homeserver.push.default_rules import PRIORITY_TWEAK
from homeserver.push.delivery import Delivery
from homeserver.push.evaluation import (
    RulesBook,
    is_push_candidate,
    may_notify,
    room_facts,
    thread_of,
    view_of,
)
from homeserver.push.pruning import NotificationPruner
from homeserver.push.rules import CompiledRules, Outcome, Recipient, RoomFacts, evaluate_group
from homeserver.rooms.shadow_bans import ShadowBans, load_shadow_bans
from homeserver.store import push as push_store

log = logging.getLogger(__name__)

ROOMS_KEPT = 2_000
USERS_KEPT = 100_000


@dataclass(slots=True)
class _Room:
    """A room as of `position`, as far as push needs it."""

    position: int
    members: dict[str, str]  # user ID -> membership
    names: dict[str, str | None]  # user ID -> display name
    power: dict[str, Any] | None
    creator: str | None
    name: str | None = None
    joined: set[str] = field(default_factory=set)
    create: dict[str, Any] | None = None  # the create event's content
    _facts: RoomFacts | None = None
    # Each member as evaluation sees them, made once (until their member event changes).
    _recipients: dict[str, Recipient] = field(default_factory=dict)

    def recipient(self, user_id: str) -> Recipient:
        found = self._recipients.get(user_id)
        if found is None:
            found = self._recipients[user_id] = Recipient(user_id, self.names.get(user_id))
        return found

    def facts(self) -> RoomFacts:
        if self._facts is None:
            self._facts = room_facts(len(self.joined), self.power, self.creator, self.create)
        return self._facts

    def apply(self, event: Event) -> None:
        if event.state_key is not None:
            if event.type == types.MEMBER:
                membership = event.content.get("membership")
                membership = membership if isinstance(membership, str) else "leave"
                self.members[event.state_key] = membership
                name = event.content.get("displayname")
                self.names[event.state_key] = name if isinstance(name, str) else None
                self._recipients.pop(event.state_key, None)
                if membership == "join":
                    self.joined.add(event.state_key)
                else:
                    self.joined.discard(event.state_key)
            elif event.type == types.POWER_LEVELS and event.state_key == "":
                self.power = dict(event.content)
            elif event.type == types.NAME and event.state_key == "":
                name = event.content.get("name")
                self.name = name if isinstance(name, str) and name else None
            if event.type in (types.MEMBER, types.POWER_LEVELS):
                self._facts = None
        self.position = event.stream_position


@dataclass(frozen=True, slots=True)
class _Read:
    """A read receipt of `user_id`, or their leaving a room: their badge may have dropped."""

    user_id: str
    stream_position: int
    origin_server_ts: int


@dataclass(frozen=True, slots=True)
class _Notified:
    event: Event
    user_id: str
    outcome: Outcome
    sender_name: str | None
    room_name: str | None


class PushFollower:
    name = push_store.FOLLOWER_NAME
    # From the first event: the counts of /sync come from its rows. Pushes are not
    # sent for events older than `max_event_age_ms` (a server upgraded with a long
    # log, or one down for a day, does not ring phones with last year's messages).
    start = Start.FIRST_EVENT
    event_types = None

    def __init__(
        self,
        pool: asyncpg.Pool,
        delivery: Delivery,
        pruner: NotificationPruner,
        *,
        max_event_age_ms: int = 3_600_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pool = pool
        self._delivery = delivery
        self._pruner = pruner
        self._max_age_ms = max_event_age_ms
        self._clock = clock
        self._book = RulesBook()
        self._rooms: OrderedDict[str, _Room] = OrderedDict()
        self._rules: OrderedDict[str, CompiledRules] = OrderedDict()
        self._ignored: OrderedDict[str, frozenset[str]] = OrderedDict()
        # The badge (`counts.unread`) last queued per pusher ID.
        self._badges: dict[int, int] = {}
        # The shadow-bans as of the events handled (or later: a ban is a stretch of
        # positions, so knowing of later ones changes nothing for earlier events).
        self._shadow_bans: ShadowBans | None = None

    async def lead(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._delivery.run(), name="push-delivery")
            group.create_task(self._pruner.run(), name="push-pruning")

    async def handle(self, conn: asyncpg.Connection, events: Sequence[Event]) -> AfterCommit | None:
        try:
            notified = await self._evaluate(conn, events)
            return await self._record(conn, notified, _reads_in(events))
        except BaseException:
            # What was applied to the caches is not committed: start them afresh.
            self._forget_all()
            raise

    def _forget_all(self) -> None:
        self._rooms.clear()
        self._rules.clear()
        self._ignored.clear()
        self._badges.clear()
        self._shadow_bans = None

    # Evaluation

    async def _evaluate(self, conn: asyncpg.Connection, events: Sequence[Event]) -> list[_Notified]:
        notified: list[_Notified] = []
        if self._shadow_bans is None:
            self._shadow_bans = await load_shadow_bans(conn)
        for event in events:
            self._forget_changed_facts(event)
            self._shadow_bans = self._shadow_bans.with_events((event,))
            # Sent while shadow-banned: no one is notified (its sender never is anyway).
            if not is_push_candidate(event) or self._shadow_bans.hides(event, None):
                continue
            if types.is_account_chain(event.room_id):
                notified += await self._evaluate_in(conn, event, None, [event.room_id])
                continue
            room = await self._room(conn, event)
            asked = set(room.joined)
            if event.type == types.MEMBER and event.content.get("membership") == "invite":
                asked.add(event.state_key or "")
            asked.discard(event.sender)
            asked.discard("")
            if asked:
                notified += await self._evaluate_in(conn, event, room, sorted(asked))
            room.apply(event)
        return notified

    def _forget_changed_facts(self, event: Event) -> None:
        """Drop what the event changes from the caches of users' rules and ignore lists."""
        if event.type == types.ACCOUNT_DATA and types.is_account_chain(event.room_id):
            if event.content.get("type") in (push_store.PUSH_RULES, types.IGNORED_USER_LIST):
                # Both are read again together (_load_users).
                self._rules.pop(event.room_id, None)
                self._ignored.pop(event.room_id, None)

    async def _room(self, conn: asyncpg.Connection, event: Event) -> _Room:
        room = self._rooms.get(event.room_id)
        if room is None or room.position >= event.stream_position:
            snapshot = await push_store.room_snapshot(
                conn, event.room_id, event.stream_position - 1
            )
            members = {m.user_id: m.membership for m in snapshot.members}
            room = _Room(
                event.stream_position - 1,
                members,
                {m.user_id: m.display_name for m in snapshot.members},
                snapshot.power_levels,
                snapshot.creator,
                snapshot.name,
                {user for user, membership in members.items() if membership == "join"},
                snapshot.create,
            )
            self._rooms[event.room_id] = room
            while len(self._rooms) > ROOMS_KEPT:
                self._rooms.popitem(last=False)
        self._rooms.move_to_end(event.room_id)
        return room

    async def _evaluate_in(
        self, conn: asyncpg.Connection, event: Event, room: _Room | None, user_ids: list[str]
    ) -> list[_Notified]:
        await self._load_users(conn, user_ids, event.stream_position)
        groups: dict[int, tuple[CompiledRules, list[Recipient]]] = {}
        for user_id in user_ids:
            if not may_notify(event, user_id, self._ignored.get(user_id, frozenset())):
                continue
            compiled = self._rules[user_id]
            recipient = room.recipient(user_id) if room is not None else Recipient(user_id)
            groups.setdefault(id(compiled), (compiled, []))[1].append(recipient)
        facts = room.facts() if room is not None else room_facts(1, None, None)
        view = view_of(event)
        sender_name = room.names.get(event.sender) if room is not None else None
        notified: list[_Notified] = []
        for compiled, recipients in groups.values():
            for user_id, outcome in evaluate_group(compiled, view, facts, recipients).items():
                if outcome.notify:
                    notified.append(
                        _Notified(
                            event,
                            user_id,
                            outcome,
                            sender_name,
                            room.name if room is not None else None,
                        )
                    )
        return notified

    async def _load_users(
        self, conn: asyncpg.Connection, user_ids: Iterable[str], position: int
    ) -> None:
        """Load the rules and ignore lists of those not cached, as of `position`: kept until
        the follower reaches a change of them (`_forget_changed_facts`)."""
        missing = [user_id for user_id in user_ids if user_id not in self._rules]
        if missing:
            stored, ignore_lists = await push_store.account_facts_as_of(conn, missing, position)
            for user_id in missing:
                self._rules[user_id] = self._book.compiled(user_id, stored.get(user_id))
                self._ignored[user_id] = ignored_user_ids(ignore_lists.get(user_id), user_id)
            while len(self._rules) > USERS_KEPT:
                evicted, _ = self._rules.popitem(last=False)
                self._ignored.pop(evicted, None)

    # Recording

    async def _record(
        self, conn: asyncpg.Connection, notified: list[_Notified], reads: list[_Read]
    ) -> AfterCommit | None:
        if not notified and not reads:
            return None
        now_ms = int(self._clock() * 1000)
        threads: dict[str, str] = {}
        await push_store.insert_notifications(
            conn,
            [
                push_store.NotificationRow(
                    item.user_id,
                    item.event.room_id,
                    item.event.stream_position,
                    item.event.event_id,
                    threads.get(item.event.event_id)
                    or threads.setdefault(item.event.event_id, thread_of(item.event)),
                    item.outcome.highlight,
                    item.outcome.actions_json,
                    now_ms,
                )
                for item in notified
                if types.is_room_chain(item.event.room_id)
            ],
        )
        fresh = [
            item for item in notified if now_ms - item.event.origin_server_ts <= self._max_age_ms
        ]
        fresh_reads = [r for r in reads if now_ms - r.origin_server_ts <= self._max_age_ms]
        if not fresh and not fresh_reads:
            return None
        users = {item.user_id for item in fresh} | {read.user_id for read in fresh_reads}
        pushers = await push_store.pushers_of_users(conn, sorted(users))
        if not pushers:
            return None
        by_user: dict[str, list[push_store.PusherRow]] = {}
        for pusher in pushers:
            by_user.setdefault(pusher.user_id, []).append(pusher)
        unread = await push_store.unread_totals(conn, sorted(by_user))
        pusher_ids: list[int] = []
        positions: list[int] = []
        bodies: list[str] = []
        tweaks: list[str] = []
        # The badges queued now, kept once they commit (`hand_over`).
        badges: dict[int, int] = {}
        # Each push's badge is the count at its event: the total less what the batch
        # notified the user of after it.
        later = _later_counts(fresh)
        for index, item in enumerate(fresh):
            badge = max(unread.get(item.user_id, 0) - later[index], 0)
            for pusher in by_user.get(item.user_id, ()):
                if pusher.created_ts > item.event.origin_server_ts:
                    continue  # as Synapse: a pusher gets the events sent since it was set
                pusher_ids.append(pusher.pusher_id)
                positions.append(item.event.stream_position)
                bodies.append(json.dumps(notification_of(item, badge)))
                tweaks.append(json.dumps(dict(item.outcome.tweaks)))
                badges[pusher.pusher_id] = badge
        # The badge after the batch's receipts, once per pusher whose badge it changes.
        for user_id in dict.fromkeys(read.user_id for read in fresh_reads):
            badge = unread.get(user_id, 0)
            position = max(r.stream_position for r in fresh_reads if r.user_id == user_id)
            for pusher in by_user.get(user_id, ()):
                if badges.get(pusher.pusher_id, self._badges.get(pusher.pusher_id)) == badge:
                    continue
                pusher_ids.append(pusher.pusher_id)
                positions.append(position)
                bodies.append(json.dumps(badge_notification(badge)))
                tweaks.append("{}")
                badges[pusher.pusher_id] = badge
        if not pusher_ids:
            return None
        seqs = await push_store.insert_outbox(conn, pusher_ids, positions, bodies, tweaks, now_ms)
        queued = [
            push_store.OutboxRow(seq, pusher_id, position, json.loads(body), json.loads(tweak))
            for seq, pusher_id, position, body, tweak in zip(
                seqs, pusher_ids, positions, bodies, tweaks, strict=True
            )
        ]

        by_id = {pusher.pusher_id: pusher for pusher in pushers}

        async def hand_over() -> None:
            self._badges.update(badges)
            self._delivery.offer(queued, by_id)

        return hand_over


def _later_counts(notified: Sequence[_Notified]) -> list[int]:
    """For each notification, how many of its user's counted ones come after it."""
    seen: dict[str, int] = {}
    later = [0] * len(notified)
    for index in range(len(notified) - 1, -1, -1):
        item = notified[index]
        later[index] = seen.get(item.user_id, 0)
        if types.is_room_chain(item.event.room_id):
            seen[item.user_id] = later[index] + 1
    return later


def _reads_in(events: Sequence[Event]) -> list[_Read]:
    """The read receipts among `events` (in account chains: the chain is the reader's),
    and the members who left a room (or declined an invite, or were kicked or banned)."""
    reads: list[_Read] = []
    for event in events:
        if event.type == types.RECEIPT:
            if event.content.get("receipt_type") in push_store.READ_RECEIPTS and (
                types.is_account_chain(event.room_id)
            ):
                reads.append(_Read(event.room_id, event.stream_position, event.origin_server_ts))
        elif event.type == types.MEMBER and event.state_key and types.is_room_chain(event.room_id):
            if event.content.get("membership") in ("leave", "ban"):
                reads.append(_Read(event.state_key, event.stream_position, event.origin_server_ts))
    return reads


def badge_notification(unread: int) -> dict[str, Any]:
    """A notification of the badge alone (no event): low priority, nothing to show."""
    return {"counts": {"unread": unread}, "prio": "low"}


def notification_of(item: _Notified, unread: int) -> dict[str, Any]:
    """The Push Gateway API's `notification`, less `devices` (added per pusher)."""
    event, tweaks = item.event, item.outcome.tweaks
    high = (
        event.type == "m.room.encrypted"
        or bool(tweaks.get("highlight"))
        or bool(tweaks.get("sound"))
        or tweaks.get(PRIORITY_TWEAK) == "high"
    )
    body: dict[str, Any] = {
        "event_id": event.event_id,
        "type": event.type,
        "sender": event.sender,
        "prio": "high" if high else "low",
        "counts": {"unread": unread},
        "content": dict(event.content),
    }
    if types.is_room_chain(event.room_id):
        body["room_id"] = event.room_id
    if item.sender_name:
        body["sender_display_name"] = item.sender_name
    if item.room_name:
        body["room_name"] = item.room_name
    if event.type == types.MEMBER:
        body["membership"] = event.content.get("membership")
        body["user_is_target"] = event.state_key == item.user_id
    return body
