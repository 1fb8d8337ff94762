"""Bundled aggregations (unsigned.m.relations: m.replace, m.thread) on every endpoint serving
events, and GET /v1/rooms/{roomId}/threads within history visibility."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from tests.matrix import MatrixClient, User

V1 = "/_matrix/client/v1"


def _edit(target: str, body: str) -> dict[str, Any]:
    return {
        "msgtype": "m.text",
        "body": f"* {body}",
        "m.new_content": {"msgtype": "m.text", "body": body},
        "m.relates_to": {"rel_type": "m.replace", "event_id": target},
    }


def _reply(root: str, body: str) -> dict[str, Any]:
    return {
        "msgtype": "m.text",
        "body": body,
        "m.relates_to": {"rel_type": "m.thread", "event_id": root},
    }


def _relations(served: dict[str, Any]) -> Any:
    return served.get("unsigned", {}).get("m.relations")


async def _everywhere(hs: MatrixClient, user: User, room: str, event_id: str) -> list[Any]:
    """The event as /event, /context, /messages and an initial sync serve it."""
    found = [await hs.ok("GET", f"rooms/{room}/event/{event_id}", user=user)]
    found.append((await hs.ok("GET", f"rooms/{room}/context/{event_id}", user=user))["event"])
    chunk = (await hs.ok("GET", f"rooms/{room}/messages?dir=b&limit=50", user=user))["chunk"]
    found += [e for e in chunk if e["event_id"] == event_id]
    sync = await hs.ok("GET", 'sync?filter={"room":{"timeline":{"limit":50}}}', user=user)
    timeline = sync["rooms"]["join"][room]["timeline"]["events"]
    found += [e for e in timeline if e["event_id"] == event_id]
    assert len(found) == 4
    return found


async def test_the_latest_edit_is_bundled_wherever_the_event_is_served(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    original = await hs.send(alice, room, {"msgtype": "m.text", "body": "helo"})
    await hs.send(alice, room, _edit(original, "hello"))
    latest = await hs.send(alice, room, _edit(original, "hello!"))
    # An "edit" by someone else is no edit of alice's message.
    await hs.send(bob, room, _edit(original, "hijacked"))

    for served in await _everywhere(hs, bob, room, original):
        replace = _relations(served)["m.replace"]
        assert replace["event_id"] == latest
        assert replace["content"]["m.new_content"]["body"] == "hello!"


async def test_a_redacted_edit_is_no_longer_bundled(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    original = await hs.send(alice, room, {"msgtype": "m.text", "body": "a"})
    first = await hs.send(alice, room, _edit(original, "b"))
    second = await hs.send(alice, room, _edit(original, "c"))
    await hs.ok("PUT", f"rooms/{room}/redact/{second}/r1", {}, user=alice)

    served = await hs.ok("GET", f"rooms/{room}/event/{original}", user=bob)
    assert _relations(served)["m.replace"]["event_id"] == first
    plain = await hs.send(alice, room, {"msgtype": "m.text", "body": "never edited"})
    assert _relations(await hs.ok("GET", f"rooms/{room}/event/{plain}", user=bob)) is None


async def test_a_thread_root_carries_its_summary(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    carol = await hs.register()
    await hs.join(carol, room)
    root = await hs.send(alice, room, {"msgtype": "m.text", "body": "root"})
    await hs.send(bob, room, _reply(root, "one"))
    last = await hs.send(bob, room, _reply(root, "two"))

    for served in await _everywhere(hs, alice, room, root):
        thread = _relations(served)["m.thread"]
        assert thread["count"] == 2
        assert thread["latest_event"]["event_id"] == last
        assert thread["latest_event"]["content"]["body"] == "two"
        assert thread["current_user_participated"] is True  # she started it
    by_carol = await hs.ok("GET", f"rooms/{room}/event/{root}", user=carol)
    assert _relations(by_carol)["m.thread"]["current_user_participated"] is False
    by_bob = await hs.ok("GET", f"rooms/{room}/event/{root}", user=bob)
    assert _relations(by_bob)["m.thread"]["current_user_participated"] is True


async def test_threads_list_latest_activity_first_and_pages(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    roots = [await hs.send(alice, room, {"msgtype": "m.text", "body": f"r{n}"}) for n in range(3)]
    await hs.send(bob, room, _reply(roots[1], "x"))
    await hs.send(alice, room, _reply(roots[0], "y"))
    await hs.send(bob, room, _reply(roots[2], "z"))
    await hs.send(alice, room, {"msgtype": "m.text", "body": "not a thread"})

    everything = await hs.ok("GET", f"{V1}/rooms/{room}/threads", user=alice)
    assert [e["event_id"] for e in everything["chunk"]] == [roots[2], roots[0], roots[1]]
    assert "next_batch" not in everything
    assert _relations(everything["chunk"][0])["m.thread"]["count"] == 1

    first = await hs.ok("GET", f"{V1}/rooms/{room}/threads?limit=2", user=alice)
    assert [e["event_id"] for e in first["chunk"]] == [roots[2], roots[0]]
    rest = await hs.ok(
        "GET", f"{V1}/rooms/{room}/threads?limit=2&from={first['next_batch']}", user=alice
    )
    assert [e["event_id"] for e in rest["chunk"]] == [roots[1]]
    assert "next_batch" not in rest


async def test_threads_include_participated_lists_only_ones_own(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    carol = await hs.register()
    await hs.join(carol, room)
    by_alice = await hs.send(alice, room, {"msgtype": "m.text", "body": "mine"})
    by_bob = await hs.send(bob, room, {"msgtype": "m.text", "body": "bob's"})
    by_carol = await hs.send(carol, room, {"msgtype": "m.text", "body": "carol's"})
    await hs.send(bob, room, _reply(by_alice, "reply to alice"))
    await hs.send(alice, room, _reply(by_bob, "alice replies"))
    await hs.send(bob, room, _reply(by_carol, "no alice here"))

    mine = await hs.ok("GET", f"{V1}/rooms/{room}/threads?include=participated", user=alice)
    assert {e["event_id"] for e in mine["chunk"]} == {by_alice, by_bob}
    bad = await hs.request("GET", f"{V1}/rooms/{room}/threads?include=some", user=alice)
    assert (bad.status, bad.errcode) == (400, "M_INVALID_PARAM")


async def test_threads_keep_to_history_visibility(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.ok(
        "PUT",
        f"rooms/{room}/state/m.room.history_visibility",
        {"history_visibility": "joined"},
        user=alice,
    )
    before = await hs.send(alice, room, {"msgtype": "m.text", "body": "before bob"})
    await hs.send(alice, room, _reply(before, "early"))
    stranger = await hs.request("GET", f"{V1}/rooms/{room}/threads", user=bob)
    assert (stranger.status, stranger.errcode) == (403, "M_FORBIDDEN")

    await hs.join(bob, room)
    after = await hs.send(alice, room, {"msgtype": "m.text", "body": "after bob"})
    await hs.send(alice, room, _reply(after, "late"))
    await hs.send(alice, room, _reply(before, "late reply to an early root"))

    seen = await hs.ok("GET", f"{V1}/rooms/{room}/threads", user=bob)
    assert [e["event_id"] for e in seen["chunk"]] == [after]
    by_alice = await hs.ok("GET", f"{V1}/rooms/{room}/threads", user=alice)
    assert [e["event_id"] for e in by_alice["chunk"]] == [before, after]


@pytest.mark.window_sources
async def test_a_sync_bundles_aggregations_alike_from_memory_and_from_the_database(
    hs: MatrixClient,
) -> None:
    # As Synapse: a timeline cut short (or a room new to the client) carries its events'
    # edits and thread summaries; one shown whole does not, for the edits and replies
    # are in it. Both window sources of /sync serve the same.
    alice, bob, room = await hs.room_of_two()
    since = (await hs.sync(bob))["next_batch"]
    for n in range(2):
        await hs.send(alice, room, {"msgtype": "m.text", "body": f"filler {n}"})
    original = await hs.send(alice, room, {"msgtype": "m.text", "body": "helo"})
    edit = await hs.send(alice, room, _edit(original, "hello"))
    await hs.send(bob, room, _reply(original, "a thread"))

    def limit(count: int) -> str:
        return quote(json.dumps({"room": {"timeline": {"limit": count}}}))

    whole = (await hs.sync(bob, since, filter=limit(10)))["rooms"]["join"][room]["timeline"]
    assert whole["limited"] is False
    assert [_relations(e) for e in whole["events"]] == [None] * 5
    cut = (await hs.sync(bob, since, filter=limit(3)))["rooms"]["join"][room]["timeline"]
    assert cut["limited"] is True
    assert cut["events"][0]["event_id"] == original
    bundled = _relations(cut["events"][0])
    assert bundled["m.replace"]["event_id"] == edit
    assert bundled["m.thread"]["count"] == 1
    assert bundled["m.thread"]["current_user_participated"] is True
