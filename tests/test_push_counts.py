"""Notification and highlight counts in /sync and in /notifications, from the push rules."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

from tests.matrix import MatrixClient, User


async def _sync(
    hs: MatrixClient, user: User, since: str | None = None, sync_filter: Any = None
) -> dict[str, Any]:
    query = "sync?timeout=0" + (f"&since={since}" if since else "")
    if sync_filter is not None:
        query += "&filter=" + quote(json.dumps(sync_filter))
    return dict(await hs.ok("GET", query, user=user))


def _counts(body: dict[str, Any], room: str) -> tuple[int, int] | None:
    section = body["rooms"]["join"].get(room)
    if section is None:
        return None
    unread = section["unread_notifications"]
    return unread["notification_count"], unread["highlight_count"]


async def _notified(hs: MatrixClient, user: User, event_id: str) -> dict[str, Any]:
    """Wait for the push follower to have recorded `event_id` for the user."""
    for _ in range(300):
        listed = (await hs.ok("GET", "notifications", user=user))["notifications"]
        for item in listed:
            if item["event"]["event_id"] == event_id:
                return dict(item)
        await asyncio.sleep(0.05)
    raise AssertionError(f"{event_id} was never listed for {user.user_id}")


async def _group(hs: MatrixClient) -> tuple[User, User, str]:
    """alice (creator, power 100) and bob in a room of three: .m.rule.message applies."""
    alice, bob, room = await hs.room_of_two()
    await hs.join(await hs.register(), room)
    return alice, bob, room


async def _text(hs: MatrixClient, user: User, room: str, body: str, **extra: Any) -> str:
    return await hs.send(user, room, {"msgtype": "m.text", "body": body, **extra})


async def test_mentions_are_highlights_live_and_in_the_initial_sync(hs: MatrixClient) -> None:
    alice, bob, room = await _group(hs)
    await hs.ok("PUT", f"profile/{bob.user_id}/displayname", {"displayname": "Bobby T"}, user=bob)
    localpart = bob.user_id[1:].split(":")[0]
    body = await _sync(hs, bob)
    assert _counts(body, room) == (0, 0)
    sent = [
        await _text(hs, alice, room, "nothing special"),
        await _text(hs, alice, room, f"hey {localpart}, look"),  # user name
        await _text(hs, alice, room, "ask bobby t about it"),  # display name
        await _text(hs, alice, room, "x", **{"m.mentions": {"user_ids": [bob.user_id]}}),
        # With m.mentions, the legacy body rules do not apply.
        await _text(hs, alice, room, f"{localpart}", **{"m.mentions": {}}),
    ]
    live = await _sync(hs, bob, body["next_batch"])  # answered from memory
    assert _counts(live, room) == (5, 3)
    await _notified(hs, bob, sent[-1])
    assert _counts(await _sync(hs, bob), room) == (5, 3)  # read from the database
    highlights = (await hs.ok("GET", "notifications?only=highlight", user=bob))["notifications"]
    assert {n["event"]["event_id"] for n in highlights} == set(sent[1:4])


async def test_at_room_highlights_only_from_a_sender_allowed_to_use_it(hs: MatrixClient) -> None:
    alice, bob, room = await _group(hs)
    carol = await hs.register()
    await hs.join(carol, room)
    body = await _sync(hs, bob)
    await _text(hs, carol, room, "@room hello everyone")  # power 0 < 50
    await _text(hs, carol, room, "hi", **{"m.mentions": {"room": True}})
    body = await _sync(hs, bob, body["next_batch"])
    assert _counts(body, room) == (2, 0)
    await _text(hs, alice, room, "@room hello everyone")  # the creator: power 100
    last = await _text(hs, alice, room, "hi", **{"m.mentions": {"room": True}})
    body = await _sync(hs, bob, body["next_batch"])
    assert _counts(body, room) == (4, 2)
    await _notified(hs, bob, last)
    assert _counts(await _sync(hs, bob), room) == (4, 2)


async def test_edits_reactions_and_notices_do_not_count(hs: MatrixClient) -> None:
    alice, bob, room = await _group(hs)
    body = await _sync(hs, bob)
    original = await _text(hs, alice, room, "first")
    edit = {
        "msgtype": "m.text",
        "body": "* second",
        "m.new_content": {"msgtype": "m.text", "body": "second"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": original},
    }
    await hs.send(alice, room, edit)
    reaction = {"m.relates_to": {"rel_type": "m.annotation", "event_id": original, "key": "👍"}}
    await hs.send(alice, room, reaction, event_type="m.reaction")
    last = await hs.send(alice, room, {"msgtype": "m.notice", "body": "a bot"})
    body = await _sync(hs, bob, body["next_batch"])
    assert _counts(body, room) == (1, 0)
    await asyncio.sleep(0)
    await _notified(hs, bob, original)
    # The follower has passed the last one too once a later event is listed.
    marker = await _text(hs, alice, room, "marker")
    await _notified(hs, bob, marker)
    assert _counts(await _sync(hs, bob), room) == (2, 0)
    assert last not in {
        n["event"]["event_id"]
        for n in (await hs.ok("GET", "notifications", user=bob))["notifications"]
    }


async def test_a_muted_room_counts_nothing(hs: MatrixClient) -> None:
    alice, bob, room = await _group(hs)
    await hs.ok("PUT", f"pushrules/global/room/{room}", {"actions": ["dont_notify"]}, user=bob)
    body = await _sync(hs, bob)
    await _text(hs, alice, room, "quiet please")
    body = await _sync(hs, bob, body["next_batch"])
    assert _counts(body, room) == (0, 0)
    # Content rules come before room rules (the spec's order): a mention still rings.
    mention = await _text(hs, alice, room, f"except {bob.user_id}")
    body = await _sync(hs, bob, body["next_batch"])
    assert _counts(body, room) == (1, 1)
    await hs.ok("DELETE", f"pushrules/global/room/{room}", user=bob)
    await _text(hs, alice, room, "loud again")
    body = await _sync(hs, bob, body["next_batch"])
    assert _counts(body, room) == (2, 1)
    await _notified(hs, bob, mention)
    listed = (await hs.ok("GET", "notifications", user=bob))["notifications"]
    assert "quiet please" not in [n["event"]["content"]["body"] for n in listed]


async def test_a_read_receipt_clears_notifications_and_highlights(hs: MatrixClient) -> None:
    alice, bob, room = await _group(hs)
    body = await _sync(hs, bob)
    await _text(hs, alice, room, "one")
    last = await _text(hs, alice, room, f"two {bob.user_id}")
    body = await _sync(hs, bob, body["next_batch"])
    assert _counts(body, room) == (2, 1)
    await hs.ok("POST", f"rooms/{room}/receipt/m.read/{last}", {}, user=bob)
    body = await _sync(hs, bob, body["next_batch"])
    assert _counts(body, room) == (0, 0)
    await _notified(hs, bob, last)
    assert _counts(await _sync(hs, bob), room) == (0, 0)
    listed = (await hs.ok("GET", "notifications", user=bob))["notifications"]
    assert all(n["read"] for n in listed)


async def test_thread_counts_when_the_filter_asks_for_them(hs: MatrixClient) -> None:
    alice, bob, room = await _group(hs)
    by_thread = {"room": {"timeline": {"unread_thread_notifications": True}}}
    root = await _text(hs, alice, room, "root")
    in_thread = {"m.relates_to": {"rel_type": "m.thread", "event_id": root}}
    reply = await _text(hs, alice, room, f"in thread {bob.user_id}", **in_thread)
    await _text(hs, alice, room, "in thread again", **in_thread)
    threaded = (await _sync(hs, bob, sync_filter=by_thread))["rooms"]["join"][room]
    assert threaded["unread_notifications"] == {"notification_count": 1, "highlight_count": 0}
    assert threaded["unread_thread_notifications"] == {
        root: {"notification_count": 2, "highlight_count": 1}
    }
    plain = await _sync(hs, bob)
    assert _counts(plain, room) == (3, 1)
    assert "unread_thread_notifications" not in plain["rooms"]["join"][room]
    # A threaded receipt reads its thread only.
    await hs.ok("POST", f"rooms/{room}/receipt/m.read/{reply}", {"thread_id": root}, user=bob)
    threaded = (await _sync(hs, bob, sync_filter=by_thread))["rooms"]["join"][room]
    assert threaded["unread_thread_notifications"] == {
        root: {"notification_count": 1, "highlight_count": 0}
    }
    assert threaded["unread_notifications"]["notification_count"] == 1


async def test_a_member_is_notified_only_of_events_after_they_joined(hs: MatrixClient) -> None:
    alice, bob, room = await _group(hs)
    before = await _text(hs, alice, room, f"before {bob.user_id}")
    carol = await hs.register()
    await hs.join(carol, room)
    after = await _text(hs, alice, room, "after")
    await _notified(hs, carol, after)
    listed = (await hs.ok("GET", "notifications", user=carol))["notifications"]
    assert [n["event"]["event_id"] for n in listed] == [after]
    assert before in {
        n["event"]["event_id"]
        for n in (await hs.ok("GET", "notifications", user=bob))["notifications"]
    }


async def test_at_room_from_a_version_12_creator_highlights(hs: MatrixClient) -> None:
    """In a room version 12 room the creators are above every level, though the power
    levels do not name them: their @room highlights, a member's does not."""
    alice, bob, carol = await hs.register(), await hs.register(), await hs.register()
    room = await hs.create_room(alice, room_version="12", preset="public_chat")
    await hs.join(bob, room)
    await hs.join(carol, room)
    body = await _sync(hs, bob)
    await _text(hs, carol, room, "@room hello everyone")
    last = await _text(hs, alice, room, "hi", **{"m.mentions": {"room": True}})
    body = await _sync(hs, bob, body["next_batch"])
    assert _counts(body, room) == (2, 1)
    await _notified(hs, bob, last)
    assert _counts(await _sync(hs, bob), room) == (2, 1)
    highlights = (await hs.ok("GET", "notifications?only=highlight", user=bob))["notifications"]
    assert [n["event"]["event_id"] for n in highlights] == [last]
