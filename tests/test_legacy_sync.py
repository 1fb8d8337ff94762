"""The deprecated v1-era endpoints older clients and bots still call: GET /initialSync,
GET /rooms/{roomId}/initialSync and GET /events (with `room_id` for world_readable
rooms), served from the sync builder."""

from __future__ import annotations

from typing import Any

import pytest

from tests.matrix import MatrixClient, User

pytestmark = pytest.mark.window_sources


def _bodies(events: list[dict[str, Any]]) -> list[str]:
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


async def _events(hs: MatrixClient, user: User, since: str, **params: Any) -> dict[str, Any]:
    query = "&".join([f"from={since}", *(f"{k}={v}" for k, v in params.items())])
    body: dict[str, Any] = await hs.ok("GET", f"events?{query}", user=user)
    return body


async def _stream_until(
    hs: MatrixClient, user: User, since: str, arrived: Any, **params: Any
) -> tuple[list[dict[str, Any]], str]:
    """Follow /events from `since` until `arrived(events so far)`: a poll may come back
    early with something else (presence)."""
    seen: list[dict[str, Any]] = []
    token = since

    async def check() -> bool:
        nonlocal token
        page = await _events(hs, user, token, timeout=1000, **params)
        assert page["start"] == token
        token = page["end"]
        seen.extend(page["chunk"])
        return bool(arrived(seen))

    await hs.eventually(check)
    return seen, token


async def _set_visibility(hs: MatrixClient, user: User, room: str, setting: str) -> None:
    await hs.ok(
        "PUT",
        f"rooms/{room}/state/m.room.history_visibility/",
        {"history_visibility": setting},
        user=user,
    )


@pytest.mark.syncs_from_database
async def test_initial_sync_lists_rooms_with_messages_state_tags_and_invites(
    hs: MatrixClient,
) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat", name="Old school")
    await hs.join(bob, room)
    for n in range(5):
        await hs.send(bob, room, {"msgtype": "m.text", "body": f"m{n}"})
    await hs.ok("PUT", f"user/{alice.user_id}/rooms/{room}/tags/work", {"order": 0.5}, user=alice)
    await hs.ok("PUT", f"user/{alice.user_id}/account_data/org.example", {"a": 1}, user=alice)
    invited = await hs.create_room(bob, name="Come")
    await hs.ok("POST", f"rooms/{invited}/invite", {"user_id": alice.user_id}, user=bob)
    body = await hs.ok("GET", "initialSync?limit=3", user=alice)
    rooms = {info["room_id"]: info for info in body["rooms"]}
    joined = rooms[room]
    assert joined["membership"] == "join"
    assert _bodies(joined["messages"]["chunk"]) == ["m2", "m3", "m4"]
    assert all(e["room_id"] == room for e in joined["messages"]["chunk"])
    assert {"start", "end", "chunk"} <= set(joined["messages"])
    state = {(e["type"], e["state_key"]) for e in joined["state"]}
    assert {("m.room.name", ""), ("m.room.member", bob.user_id)} <= state
    tags = [e for e in joined["account_data"] if e["type"] == "m.tag"]
    assert tags == [{"type": "m.tag", "content": {"tags": {"work": {"order": 0.5}}}}]
    assert rooms[invited]["membership"] == "invite"
    assert rooms[invited]["invite"]["content"]["membership"] == "invite"
    assert rooms[invited]["invite"]["sender"] == bob.user_id
    assert {"type": "org.example", "content": {"a": 1}} in body["account_data"]
    assert isinstance(body["presence"], list)
    assert body["end"].startswith("s")


@pytest.mark.syncs_from_database
async def test_initial_sync_shows_departed_rooms_only_when_archived(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "before"})
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=bob)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "after"})
    plain = await hs.ok("GET", "initialSync", user=bob)
    assert room not in {info["room_id"] for info in plain["rooms"]}
    archived = await hs.ok("GET", "initialSync?archived=true", user=bob)
    (left,) = [info for info in archived["rooms"] if info["room_id"] == room]
    assert left["membership"] == "leave"
    assert _bodies(left["messages"]["chunk"]) == ["before"]


async def test_the_event_stream_carries_messages_receipts_typing_presence_and_leaves(
    hs: MatrixClient,
) -> None:
    alice, bob, room = await hs.room_of_two()
    other = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, other)
    end = (await hs.ok("GET", "initialSync", user=bob))["end"]
    event_id = await hs.send(alice, room, {"msgtype": "m.text", "body": "hello"})
    seen, token = await _stream_until(hs, bob, end, lambda events: _bodies(events))
    assert _bodies(seen) == ["hello"]
    assert next(e for e in seen if e["type"] == "m.room.message")["room_id"] == room
    await hs.ok("POST", f"rooms/{room}/receipt/m.read/{event_id}", {}, user=alice)
    typing = {"typing": True, "timeout": 5000}
    await hs.ok("PUT", f"rooms/{room}/typing/{alice.user_id}", typing, user=alice)
    await hs.ok("PUT", f"presence/{alice.user_id}/status", {"presence": "online"}, user=alice)
    await hs.ok("POST", f"rooms/{other}/leave", {}, user=bob)
    wanted = {
        ("m.receipt", room),
        ("m.typing", room),
        ("m.presence", None),
        ("m.room.member", other),
    }
    seen, _ = await _stream_until(
        hs, bob, token, lambda events: wanted <= {(e["type"], e.get("room_id")) for e in events}
    )
    receipt = next(e for e in seen if e["type"] == "m.receipt")
    assert alice.user_id in receipt["content"][event_id]["m.read"]
    presence = next(e for e in seen if e["type"] == "m.presence")
    assert presence["content"]["user_id"] == alice.user_id
    leave = next(e for e in seen if e["type"] == "m.room.member")
    assert (leave["state_key"], leave["content"]["membership"]) == (bob.user_id, "leave")


@pytest.mark.syncs_from_database
async def test_a_world_readable_room_can_be_followed_without_joining(hs: MatrixClient) -> None:
    alice, stranger = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.send(alice, room, {"msgtype": "m.text", "body": "private"})
    await _set_visibility(hs, alice, room, "world_readable")
    await hs.send(alice, room, {"msgtype": "m.text", "body": "public"})
    # sytest: "non-joined users can room initialSync for world_readable rooms".
    snapshot = await hs.ok("GET", f"rooms/{room}/initialSync", user=stranger)
    chunk = snapshot["messages"]["chunk"]
    assert [e["type"] for e in chunk] == ["m.room.history_visibility", "m.room.message"]
    assert _bodies(chunk) == ["public"]
    assert {"room_id", "state", "presence", "messages"} <= set(snapshot)
    # sytest: "non-joined user can call /events on world_readable room".
    await hs.send(alice, room, {"msgtype": "m.text", "body": "mice"})
    seen, _ = await _stream_until(
        hs, stranger, snapshot["messages"]["end"], lambda events: _bodies(events), room_id=room
    )
    assert _bodies(seen) == ["mice"]
    assert all(e.get("room_id") in (room, None) for e in seen)


@pytest.mark.syncs_from_database
@pytest.mark.parametrize("setting", ["shared", "invited", "joined"])
async def test_a_room_that_is_not_world_readable_cannot_be_read_by_a_stranger(
    hs: MatrixClient, setting: str
) -> None:
    alice, stranger = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await _set_visibility(hs, alice, room, setting)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "mice"})
    snapshot = await hs.request("GET", f"rooms/{room}/initialSync", user=stranger)
    assert (snapshot.status, snapshot.errcode) == (403, "M_FORBIDDEN")
    since = (await hs.sync(stranger))["next_batch"]
    stream = await hs.request("GET", f"events?from={since}&room_id={room}", user=stranger)
    assert (stream.status, stream.errcode) == (403, "M_FORBIDDEN")


@pytest.mark.syncs_from_database
async def test_room_initial_sync_of_a_member_and_of_one_who_left(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    await hs.send(alice, room, {"msgtype": "m.text", "body": "before"})
    mine = await hs.ok("GET", f"rooms/{room}/initialSync", user=bob)
    assert mine["membership"] == "join"
    assert _bodies(mine["messages"]["chunk"]) == ["before"]
    assert mine["visibility"] == "private"
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=bob)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "after"})
    departed = await hs.ok("GET", f"rooms/{room}/initialSync", user=bob)
    assert departed["membership"] == "leave"
    assert _bodies(departed["messages"]["chunk"]) == ["before"]
    assert departed["messages"]["chunk"][-1]["content"]["membership"] == "leave"
