"""The /sync response: the result, a room's empty section, and pieces of the body the
sections share (receipts folded from their facts, the inviter of an invite)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from homeserver.events import types
from homeserver.events.model import Event, JsonDict
from homeserver.push.counts import RoomCounts, rendered
from homeserver.store.sync import Summary
from homeserver.sync.tokens import SyncToken, pagination_token


@dataclass
class SyncResult:
    token: SyncToken  # the body's next_batch
    body: JsonDict
    has_changes: bool
    joined_rooms: Collection[str] = ()  # those the filter allows


def room_summary(summary: Summary) -> JsonDict:
    """A joined room's `summary`: sent whenever its members, name or canonical alias
    changed (the spec requires the counts then), so clients name and count the room
    right; heroes only for a room with neither name nor alias."""
    served: JsonDict = {
        "m.joined_member_count": summary.joined,
        "m.invited_member_count": summary.invited,
    }
    if summary.heroes is not None:
        served["m.heroes"] = summary.heroes
    return served


def add_unread_counts(room: JsonDict, counts: RoomCounts, by_thread: bool) -> None:
    """A joined room's badge (`unread_notifications`), and its threads' when asked for."""
    unread, threads = rendered(counts, by_thread)
    room["unread_notifications"] = unread
    if by_thread:
        room["unread_thread_notifications"] = threads


def empty_room(upper: int) -> JsonDict:
    return {
        "timeline": {"events": [], "limited": False, "prev_batch": pagination_token(upper)},
        "state": {"events": []},
        "ephemeral": {"events": []},
        "account_data": {"events": []},
    }


def room_has_content(room: JsonDict) -> bool:
    return bool(
        room["timeline"]["events"]
        or room["state"]["events"]
        or room["ephemeral"]["events"]
        or room["account_data"]["events"]
    )


def inviter(invite: JsonDict, user_id: str) -> str | None:
    """Who sent the invite an invite section shows (its member event's sender)."""
    for event in invite["invite_state"]["events"]:
        if event["type"] == types.MEMBER and event["state_key"] == user_id:
            return str(event["sender"])
    return None


def add_receipt(receipts: dict[str, JsonDict], event: Event) -> None:
    """Fold a receipt fact (from its owner's chain) into the room's m.receipt content."""
    content = event.content
    receipt_type = content.get("receipt_type")
    if receipt_type == "m.read.private" or not isinstance(receipt_type, str):
        return  # private receipts reach only their owner, whose sync takes the slow path
    read: JsonDict = {"ts": content.get("ts", event.origin_server_ts)}
    if content.get("thread_id"):
        read["thread_id"] = content["thread_id"]
    room = receipts.setdefault(str(content["room_id"]), {})
    room.setdefault(str(content.get("event_id")), {}).setdefault(receipt_type, {})[
        event.room_id
    ] = read
