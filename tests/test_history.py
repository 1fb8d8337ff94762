"""Room history as a client reads it: /messages, /context and /members?at, within what
history visibility allows."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

from tests.matrix import MatrixClient, Reply, User


async def _messages(hs: MatrixClient, user: User, room: str, **params: Any) -> Reply:
    query = {k: json.dumps(v) if k == "filter" else str(v) for k, v in params.items()}
    return await hs.request("GET", f"rooms/{room}/messages?{urlencode(query)}", user=user)


async def _page(hs: MatrixClient, user: User, room: str, **params: Any) -> dict[str, Any]:
    reply = await _messages(hs, user, room, **params)
    assert reply.status == 200, reply.body
    body: dict[str, Any] = reply.body
    return body


async def _all_pages(
    hs: MatrixClient, user: User, room: str, **params: Any
) -> tuple[list[dict[str, Any]], int]:
    """Every event from paginating until `end` is gone, and how many pages it took."""
    events: list[dict[str, Any]] = []
    pages = 0
    while True:
        body = await _page(hs, user, room, **params)
        pages += 1
        events += body["chunk"]
        if "end" not in body:
            return events, pages
        assert body["chunk"], "a page that is not the last must not be empty here"
        params["from"] = body["end"]


def _bodies(events: list[dict[str, Any]]) -> list[str]:
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


async def _room_with_messages(hs: MatrixClient, count: int, **room: Any) -> tuple[User, str]:
    alice = await hs.register()
    room_id = await hs.create_room(alice, **room)
    for n in range(count):
        await hs.send(alice, room_id, {"msgtype": "m.text", "body": f"m{n}"})
    return alice, room_id


async def _set_visibility(hs: MatrixClient, user: User, room: str, value: str) -> None:
    await hs.ok(
        "PUT",
        f"rooms/{room}/state/m.room.history_visibility/",
        {"history_visibility": value},
        user=user,
    )


# Pagination


async def test_paging_backwards_returns_every_message_once_newest_first(hs: MatrixClient) -> None:
    alice, room = await _room_with_messages(hs, 25)
    events, pages = await _all_pages(hs, alice, room, dir="b", limit=10)
    assert _bodies(events) == [f"m{n}" for n in reversed(range(25))]
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids))
    assert events[-1]["type"] == "m.room.create"
    assert pages == -(-len(events) // 10)


async def test_paging_forwards_returns_the_same_events_oldest_first(hs: MatrixClient) -> None:
    alice, room = await _room_with_messages(hs, 25)
    backwards, _ = await _all_pages(hs, alice, room, dir="b", limit=10)
    forwards, _ = await _all_pages(hs, alice, room, dir="f", limit=10)
    assert [e["event_id"] for e in forwards] == [e["event_id"] for e in reversed(backwards)]
    assert forwards[0]["type"] == "m.room.create"


async def test_pages_chain_with_no_gap_and_no_duplicate(hs: MatrixClient) -> None:
    alice, room = await _room_with_messages(hs, 25)
    first = await _page(hs, alice, room, dir="b", limit=10)
    second = await _page(hs, alice, room, dir="b", limit=10, **{"from": first["end"]})
    assert _bodies(first["chunk"]) == [f"m{n}" for n in range(24, 14, -1)]
    assert _bodies(second["chunk"]) == [f"m{n}" for n in range(14, 4, -1)]
    # Forwards from the end of the first page is that page again, oldest first.
    again = await _page(hs, alice, room, dir="f", limit=10, **{"from": first["end"]})
    assert [e["event_id"] for e in again["chunk"]] == [
        e["event_id"] for e in reversed(first["chunk"])
    ]
    # It reached the newest event, but more may follow: `end` is where to ask again.
    nothing_yet = await _page(hs, alice, room, dir="f", **{"from": again["end"]})
    assert nothing_yet["chunk"] == [] and "end" not in nothing_yet
    await hs.send(alice, room, {"msgtype": "m.text", "body": "later"})
    later = await _page(hs, alice, room, dir="f", **{"from": again["end"]})
    assert _bodies(later["chunk"]) == ["later"]


async def test_start_echoes_from_and_end_is_left_out_at_the_beginning(hs: MatrixClient) -> None:
    alice, room = await _room_with_messages(hs, 3)
    whole = await _page(hs, alice, room, dir="b", limit=100)
    assert "end" not in whole
    token = whole["start"]
    again = await _page(hs, alice, room, dir="b", limit=2, **{"from": token})
    assert again["start"] == token and "end" in again


async def test_to_stops_pagination_at_a_token(hs: MatrixClient) -> None:
    alice, room = await _room_with_messages(hs, 12)
    newest = await _page(hs, alice, room, dir="b", limit=5)
    older = await _page(hs, alice, room, dir="b", limit=50, to=newest["end"])
    assert _bodies(older["chunk"]) == [f"m{n}" for n in range(11, 6, -1)]
    assert "end" not in older
    forwards = await _page(
        hs, alice, room, dir="f", limit=50, **{"from": newest["end"], "to": newest["start"]}
    )
    assert _bodies(forwards["chunk"]) == [f"m{n}" for n in range(7, 12)]


async def test_sync_tokens_work_as_pagination_tokens(hs: MatrixClient) -> None:
    alice, room = await _room_with_messages(hs, 4)
    sync = await hs.sync(alice)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "after sync"})
    before = await _page(hs, alice, room, dir="b", limit=2, **{"from": sync["next_batch"]})
    assert _bodies(before["chunk"]) == ["m3", "m2"]
    after = await _page(hs, alice, room, dir="f", **{"from": sync["next_batch"]})
    assert _bodies(after["chunk"]) == ["after sync"]
    prev_batch = sync["rooms"]["join"][room]["timeline"]["prev_batch"]
    seen = {e["event_id"] for e in sync["rooms"]["join"][room]["timeline"]["events"]}
    earlier, _ = await _all_pages(hs, alice, room, dir="b", **{"from": prev_batch})
    assert not seen & {e["event_id"] for e in earlier}


async def test_other_rooms_events_never_appear(hs: MatrixClient) -> None:
    alice, room = await _room_with_messages(hs, 3)
    other = await hs.create_room(alice)
    await hs.send(alice, other, {"msgtype": "m.text", "body": "elsewhere"})
    events, _ = await _all_pages(hs, alice, room, dir="b")
    assert {e["room_id"] for e in events} == {room}


# Filters


async def test_filter_by_type_and_sender(hs: MatrixClient) -> None:
    alice, room = await _room_with_messages(hs, 3, preset="public_chat")
    bob = await hs.register()
    await hs.join(bob, room)
    for n in range(3):
        await hs.send(bob, room, {"msgtype": "m.text", "body": f"b{n}"})
    only_messages, _ = await _all_pages(
        hs, alice, room, dir="b", limit=2, filter={"types": ["m.room.message"]}
    )
    assert _bodies(only_messages) == ["b2", "b1", "b0", "m2", "m1", "m0"]
    assert {e["type"] for e in only_messages} == {"m.room.message"}
    from_bob, _ = await _all_pages(
        hs, alice, room, dir="f", filter={"senders": [bob.user_id], "types": ["m.room.*"]}
    )
    assert [e["type"] for e in from_bob] == ["m.room.member"] + ["m.room.message"] * 3
    not_bob, _ = await _all_pages(
        hs, alice, room, dir="b", filter={"not_senders": [bob.user_id], "not_types": ["m.room.m*"]}
    )
    assert not_bob and all(e["sender"] == alice.user_id for e in not_bob)
    assert not {e["type"] for e in not_bob} & {"m.room.member", "m.room.message"}


async def test_filter_limit_caps_the_page(hs: MatrixClient) -> None:
    alice, room = await _room_with_messages(hs, 6)
    body = await _page(hs, alice, room, dir="b", limit=5, filter={"limit": 2})
    assert len(body["chunk"]) == 2 and "end" in body


async def test_contains_url_filter(hs: MatrixClient) -> None:
    alice, room = await _room_with_messages(hs, 2)
    await hs.send(alice, room, {"msgtype": "m.image", "body": "pic", "url": "mxc://hs/abc"})
    with_url = await _page(hs, alice, room, dir="b", filter={"contains_url": True})
    assert _bodies(with_url["chunk"]) == ["pic"]
    without = await _page(hs, alice, room, dir="b", filter={"contains_url": False})
    assert "pic" not in _bodies(without["chunk"]) and "m1" in _bodies(without["chunk"])


async def test_filter_for_another_room_returns_nothing(hs: MatrixClient) -> None:
    alice, room = await _room_with_messages(hs, 2)
    body = await _page(hs, alice, room, dir="b", filter={"not_rooms": [room]})
    assert body["chunk"] == [] and "end" not in body


async def test_lazy_loading_returns_members_of_the_chunk_senders(hs: MatrixClient) -> None:
    alice, room = await _room_with_messages(hs, 1, preset="public_chat")
    bob, carol = await hs.register(), await hs.register()
    await hs.join(bob, room)
    await hs.join(carol, room)
    await hs.send(bob, room, {"msgtype": "m.text", "body": "from bob"})
    body = await _page(
        hs,
        alice,
        room,
        dir="b",
        limit=1,
        filter={"lazy_load_members": True, "types": ["m.room.message"]},
    )
    assert _bodies(body["chunk"]) == ["from bob"]
    assert [(e["type"], e["state_key"]) for e in body["state"]] == [("m.room.member", bob.user_id)]
    plain = await _page(hs, alice, room, dir="b", limit=1)
    assert "state" not in plain


# What is served


async def test_redacted_events_are_served_redacted(hs: MatrixClient) -> None:
    alice, room = await _room_with_messages(hs, 2)
    target = await hs.send(alice, room, {"msgtype": "m.text", "body": "secret"})
    await hs.ok("PUT", f"rooms/{room}/redact/{target}/t1", {"reason": "oops"}, user=alice)
    events, _ = await _all_pages(hs, alice, room, dir="b")
    redacted = next(e for e in events if e["event_id"] == target)
    assert redacted["content"] == {}
    assert redacted["unsigned"]["redacted_because"]["content"]["redacts"] == target


async def test_own_events_carry_their_transaction_id(hs: MatrixClient) -> None:
    alice, room = await _room_with_messages(hs, 0)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "x"}, txn_id="my-txn")
    body = await _page(hs, alice, room, dir="b", limit=1)
    assert body["chunk"][0]["unsigned"]["transaction_id"] == "my-txn"


# Bad requests


async def test_bad_parameters_are_refused(hs: MatrixClient) -> None:
    alice, room = await _room_with_messages(hs, 1)
    cases = [
        ({}, "M_MISSING_PARAM"),
        ({"dir": "x"}, "M_INVALID_PARAM"),
        ({"dir": "b", "from": "garbage"}, "M_INVALID_PARAM"),
        ({"dir": "b", "to": "t-1"}, "M_INVALID_PARAM"),
        ({"dir": "b", "limit": "ten"}, "M_INVALID_PARAM"),
        ({"dir": "b", "limit": "-1"}, "M_INVALID_PARAM"),
    ]
    for params, errcode in cases:
        reply = await _messages(hs, alice, room, **params)
        assert (reply.status, reply.errcode) == (400, errcode), params
    reply = await hs.request(
        "GET", f"rooms/{room}/messages?dir=b&filter={quote('{nope')}", user=alice
    )
    assert (reply.status, reply.errcode) == (400, "M_NOT_JSON")
    reply = await _messages(hs, alice, room, dir="b", filter={"types": "m.room.message"})
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")


async def test_huge_limit_is_capped(hs: MatrixClient) -> None:
    alice, room = await _room_with_messages(hs, 2)
    body = await _page(hs, alice, room, dir="b", limit=10**9)
    assert "end" not in body and _bodies(body["chunk"]) == ["m1", "m0"]


# Who may read what


async def test_non_member_cannot_read_messages(hs: MatrixClient) -> None:
    _, room = await _room_with_messages(hs, 2)
    mallory = await hs.register()
    reply = await _messages(hs, mallory, room, dir="b")
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    reply = await _messages(hs, mallory, "!nosuchroom:localhost", dir="b")
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")


async def test_invitee_cannot_read_before_joining(hs: MatrixClient) -> None:
    alice, room = await _room_with_messages(hs, 2)
    bob = await hs.register()
    await hs.ok("POST", f"rooms/{room}/invite", {"user_id": bob.user_id}, user=alice)
    reply = await _messages(hs, bob, room, dir="b")
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")


async def test_user_who_left_sees_nothing_after_leaving(hs: MatrixClient) -> None:
    alice, room = await _room_with_messages(hs, 2, preset="public_chat")
    bob = await hs.register()
    await hs.join(bob, room)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "while bob was here"})
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=bob)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "after bob left"})
    events, _ = await _all_pages(hs, bob, room, dir="b", limit=3)
    assert events[0]["type"] == "m.room.member" and events[0]["state_key"] == bob.user_id
    assert events[0]["content"]["membership"] == "leave"
    assert _bodies(events) == ["while bob was here", "m1", "m0"]
    forwards, _ = await _all_pages(hs, bob, room, dir="f", limit=4)
    assert "after bob left" not in _bodies(forwards)
    assert forwards[-1]["event_id"] == events[0]["event_id"]


async def test_forgotten_room_cannot_be_read(hs: MatrixClient) -> None:
    _alice, room = await _room_with_messages(hs, 1, preset="public_chat")
    bob = await hs.register()
    await hs.join(bob, room)
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=bob)
    await hs.ok("POST", f"rooms/{room}/forget", {}, user=bob)
    reply = await _messages(hs, bob, room, dir="b")
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")


async def test_joined_visibility_hides_earlier_messages_from_a_later_joiner(
    hs: MatrixClient,
) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await _set_visibility(hs, alice, room, "joined")
    await hs.send(alice, room, {"msgtype": "m.text", "body": "before bob"})
    bob = await hs.register()
    await hs.join(bob, room)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "after bob"})
    events, _ = await _all_pages(hs, bob, room, dir="b", limit=2)
    assert _bodies(events) == ["after bob"]
    # Bob's view resumes at his join; only the room's creation, which happened
    # while it was still shared, shows from before.
    join = next(i for i, e in enumerate(events) if e.get("state_key") == bob.user_id)
    assert events[join]["content"]["membership"] == "join"
    visibility = next(i for i, e in enumerate(events) if e["type"] == "m.room.history_visibility")
    assert visibility == join + 1 and events[visibility]["content"] == {
        "history_visibility": "joined"
    }
    forwards, _ = await _all_pages(hs, bob, room, dir="f", limit=2)
    assert [e["event_id"] for e in forwards] == [e["event_id"] for e in reversed(events)]
    everything, _ = await _all_pages(hs, alice, room, dir="b")
    assert _bodies(everything) == ["after bob", "before bob"]


async def test_shared_visibility_shows_earlier_messages_to_a_later_joiner(
    hs: MatrixClient,
) -> None:
    _alice, room = await _room_with_messages(hs, 3, preset="public_chat")
    bob = await hs.register()
    await hs.join(bob, room)
    events, _ = await _all_pages(hs, bob, room, dir="b", limit=2)
    assert _bodies(events) == ["m2", "m1", "m0"]
    assert events[-1]["type"] == "m.room.create"


async def test_invited_visibility_shows_messages_from_the_invite_on(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice, preset="private_chat")
    await _set_visibility(hs, alice, room, "invited")
    await hs.send(alice, room, {"msgtype": "m.text", "body": "before invite"})
    bob = await hs.register()
    await hs.ok("POST", f"rooms/{room}/invite", {"user_id": bob.user_id}, user=alice)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "while invited"})
    await hs.join(bob, room)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "after join"})
    events, _ = await _all_pages(hs, bob, room, dir="b", limit=2)
    assert _bodies(events) == ["after join", "while invited"]
    mine = [e["content"]["membership"] for e in events if e.get("state_key") == bob.user_id]
    assert mine == ["join", "invite"]
    invite = next(
        i
        for i, e in enumerate(events)
        if e.get("state_key") == bob.user_id and e["content"]["membership"] == "invite"
    )
    assert events[invite + 1]["type"] == "m.room.history_visibility"


async def test_world_readable_room_can_be_read_without_joining(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.send(alice, room, {"msgtype": "m.text", "body": "shared era"})
    await _set_visibility(hs, alice, room, "world_readable")
    await hs.send(alice, room, {"msgtype": "m.text", "body": "public era"})
    lurker = await hs.register()
    events, _ = await _all_pages(hs, lurker, room, dir="b")
    assert _bodies(events) == ["public era"]


# /context


async def test_context_returns_the_events_around_an_event(hs: MatrixClient) -> None:
    alice, room = await _room_with_messages(hs, 10)
    events, _ = await _all_pages(hs, alice, room, dir="f", filter={"types": ["m.room.message"]})
    middle = events[5]
    body = await hs.ok("GET", f"rooms/{room}/context/{middle['event_id']}?limit=4", user=alice)
    assert body["event"]["event_id"] == middle["event_id"]
    assert _bodies(body["events_before"]) == ["m4", "m3"]
    assert _bodies(body["events_after"]) == ["m6", "m7"]
    assert {(e["type"], e.get("state_key")) for e in body["state"]} >= {
        ("m.room.create", ""),
        ("m.room.member", alice.user_id),
    }
    # Its tokens continue exactly where the context ends.
    older = await _page(hs, alice, room, dir="b", limit=1, **{"from": body["start"]})
    assert _bodies(older["chunk"]) == ["m2"]
    newer = await _page(hs, alice, room, dir="f", limit=1, **{"from": body["end"]})
    assert _bodies(newer["chunk"]) == ["m8"]


async def test_context_applies_the_filter_but_not_to_the_event(hs: MatrixClient) -> None:
    alice, room = await _room_with_messages(hs, 3)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "x"}, event_type="com.example.other")
    last = await hs.send(alice, room, {"msgtype": "m.text", "body": "m3"})
    query = urlencode({"limit": 4, "filter": json.dumps({"types": ["com.example.other"]})})
    body = await hs.ok("GET", f"rooms/{room}/context/{last}?{query}", user=alice)
    assert body["event"]["event_id"] == last
    assert [e["type"] for e in body["events_before"]] == ["com.example.other"]
    assert body["events_after"] == [] and body["state"] == []


async def test_context_with_zero_limit_returns_only_the_event(hs: MatrixClient) -> None:
    alice, room = await _room_with_messages(hs, 3)
    target = await hs.send(alice, room, {"msgtype": "m.text", "body": "t"})
    body = await hs.ok("GET", f"rooms/{room}/context/{target}?limit=0", user=alice)
    assert body["event"]["event_id"] == target
    assert body["events_before"] == [] and body["events_after"] == []


async def test_context_of_unknown_or_invisible_event_is_not_found(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await _set_visibility(hs, alice, room, "joined")
    hidden = await hs.send(alice, room, {"msgtype": "m.text", "body": "before bob"})
    bob = await hs.register()
    await hs.join(bob, room)
    for event_id in ("$nosuchevent", hidden):
        reply = await hs.request("GET", f"rooms/{room}/context/{event_id}", user=bob)
        assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND"), event_id
    other = await hs.create_room(alice)
    elsewhere = await hs.send(alice, other, {"msgtype": "m.text", "body": "other room"})
    reply = await hs.request("GET", f"rooms/{room}/context/{elsewhere}", user=alice)
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")


async def test_context_is_forbidden_to_non_members(hs: MatrixClient) -> None:
    alice, room = await _room_with_messages(hs, 1)
    target = await hs.send(alice, room, {"msgtype": "m.text", "body": "t"})
    mallory = await hs.register()
    reply = await hs.request("GET", f"rooms/{room}/context/{target}", user=mallory)
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")


# /members?at


async def test_members_at_a_token_shows_the_membership_then(hs: MatrixClient) -> None:
    alice, room = await _room_with_messages(hs, 1, preset="public_chat")
    before_bob = (await _page(hs, alice, room, dir="b", limit=1))["start"]
    bob = await hs.register()
    await hs.join(bob, room)
    then = await hs.ok("GET", f"rooms/{room}/members?at={before_bob}", user=alice)
    assert [e["state_key"] for e in then["chunk"]] == [alice.user_id]
    now = await hs.ok("GET", f"rooms/{room}/members", user=alice)
    assert {e["state_key"] for e in now["chunk"]} == {alice.user_id, bob.user_id}
    prev_batch = (await _page(hs, alice, room, dir="b", limit=1))["end"]
    at_join = await hs.ok("GET", f"rooms/{room}/members?at={prev_batch}", user=alice)
    assert [e["state_key"] for e in at_join["chunk"]] == [alice.user_id]
    reply = await hs.request("GET", f"rooms/{room}/members?at=garbage", user=alice)
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")


async def test_members_at_a_token_after_leaving_is_forbidden(hs: MatrixClient) -> None:
    alice, room = await _room_with_messages(hs, 1, preset="public_chat")
    bob = await hs.register()
    await hs.join(bob, room)
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=bob)
    at_leave = (await _page(hs, bob, room, dir="b", limit=1))["start"]
    carol = await hs.register()
    await hs.join(carol, room)
    latest = (await _page(hs, alice, room, dir="b", limit=1))["start"]
    # As Synapse: the members then only to one who could see the room then.
    reply = await hs.request("GET", f"rooms/{room}/members?at={latest}", user=bob)
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    seen = await hs.ok("GET", f"rooms/{room}/members?at={at_leave}", user=bob)
    members = {e["state_key"]: e["content"]["membership"] for e in seen["chunk"]}
    assert members == {alice.user_id: "join", bob.user_id: "leave"}
    # Without a token, one who left sees the members as they were when they left.
    now = await hs.ok("GET", f"rooms/{room}/members", user=bob)
    assert carol.user_id not in {e["state_key"] for e in now["chunk"]}
