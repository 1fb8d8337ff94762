"""The /sync response body: its skeleton, its empty room section, and the pieces of
it the builder assembles outside any one source (receipts folded from their
facts, the inviter of an invite)."""

from __future__ import annotations

from dataclasses import dataclass, field

from homeserver.events import types
from homeserver.events.model import Event, JsonDict
from homeserver.push.counts import RoomCounts, rendered
from homeserver.store.sync import Summary
from homeserver.sync.tokens import SyncToken, pagination_token


@dataclass
class SyncResult:
    body: JsonDict
    has_changes: bool
    joined_rooms: list[str] = field(default_factory=list)


def sync_result(
    token: SyncToken,
    join: dict[str, JsonDict],
    invite: dict[str, JsonDict],
    leave: dict[str, JsonDict],
    account_data: list[JsonDict],
    to_device: list[JsonDict],
    joined_rooms: list[str],
) -> SyncResult:
    """The /sync body, and whether it carries anything new."""
    body: JsonDict = {
        "next_batch": str(token),
        "rooms": {"join": join, "invite": invite, "leave": leave},
        "account_data": {"events": account_data},
        "presence": {"events": []},
        "to_device": {"events": to_device},
        "device_one_time_keys_count": {},
    }
    has_changes = bool(join or invite or leave or account_data or to_device)
    return SyncResult(body, has_changes, joined_rooms)


def with_presence(result: SyncResult, events: list[JsonDict]) -> SyncResult:
    if events:
        result.body["presence"]["events"] = events
        result.has_changes = True
    return result


def room_summary(summary: Summary) -> JsonDict:
    """A joined room's `summary`: sent whenever its members changed (the spec requires
    the counts then), so clients name and count the room right."""
    return {
        "m.heroes": summary.heroes,
        "m.joined_member_count": summary.joined,
        "m.invited_member_count": summary.invited,
    }


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
