"""Spec: GET /rooms/{roomId}/messages (pagination), GET /rooms/{roomId}/context/{eventId},
GET /rooms/{roomId}/members?at=, GET /v1/rooms/{roomId}/relations/{eventId}, and "Room
History Visibility" as they and GET /rooms/{roomId}/event/{eventId} apply it."""

from __future__ import annotations

import json
from typing import Any

from sytest_lite.client import Api, Registered, assert_error, q


async def _messages(
    api: Api, who: Registered, room_id: str, **params: Any
) -> tuple[int, dict[str, Any]]:
    query = {k: json.dumps(v) if k == "filter" else str(v) for k, v in params.items()}
    return await api.request(
        "GET", f"/rooms/{q(room_id)}/messages", token=who.access_token, params=query
    )


async def _page(api: Api, who: Registered, room_id: str, **params: Any) -> dict[str, Any]:
    status, body = await _messages(api, who, room_id, **params)
    assert status == 200, (params, body)
    assert isinstance(body["chunk"], list) and isinstance(body["start"], str), body
    return body


async def _paginate(api: Api, who: Registered, room_id: str, **params: Any) -> list[dict]:
    events: list[dict] = []
    for _ in range(100):
        body = await _page(api, who, room_id, **params)
        events += body["chunk"]
        if "end" not in body:
            return events
        params["from"] = body["end"]
    raise AssertionError("pagination never ended")


def _texts(events: list[dict]) -> list[str]:
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


async def _room_with_texts(api: Api, who: Registered, count: int, **room: Any) -> str:
    room_id = await api.create_room(who.access_token, **room)
    for n in range(count):
        await api.send_text(who.access_token, room_id, f"m{n}")
    return room_id


async def _set_visibility(api: Api, who: Registered, room_id: str, value: str) -> None:
    status, body = await api.put_state(
        who.access_token, room_id, "m.room.history_visibility", {"history_visibility": value}
    )
    assert status == 200, body


async def test_backwards_pages_hold_every_message_once(api: Api, alice: Registered) -> None:
    room_id = await _room_with_texts(api, alice, 25)
    events = await _paginate(api, alice, room_id, dir="b", limit=10)
    assert _texts(events) == [f"m{n}" for n in range(24, -1, -1)]
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids))
    assert events[-1]["type"] == "m.room.create"
    assert all(e["room_id"] == room_id for e in events)


async def test_forwards_pages_are_the_same_events_in_order(api: Api, alice: Registered) -> None:
    room_id = await _room_with_texts(api, alice, 25)
    backwards = await _paginate(api, alice, room_id, dir="b", limit=10)
    forwards = await _paginate(api, alice, room_id, dir="f", limit=10)
    assert [e["event_id"] for e in forwards] == [e["event_id"] for e in reversed(backwards)]


async def test_end_token_continues_where_the_page_stopped(api: Api, alice: Registered) -> None:
    room_id = await _room_with_texts(api, alice, 15)
    first = await _page(api, alice, room_id, dir="b", limit=5)
    assert _texts(first["chunk"]) == ["m14", "m13", "m12", "m11", "m10"]
    second = await _page(api, alice, room_id, dir="b", limit=5, **{"from": first["end"]})
    assert _texts(second["chunk"]) == ["m9", "m8", "m7", "m6", "m5"]
    back = await _page(api, alice, room_id, dir="f", limit=5, **{"from": second["end"]})
    assert _texts(back["chunk"]) == ["m5", "m6", "m7", "m8", "m9"]


async def test_to_bounds_the_page(api: Api, alice: Registered) -> None:
    room_id = await _room_with_texts(api, alice, 8)
    first = await _page(api, alice, room_id, dir="b", limit=3)
    bounded = await _page(api, alice, room_id, dir="b", limit=50, to=first["end"])
    assert _texts(bounded["chunk"]) == ["m7", "m6", "m5"]


async def test_sync_prev_batch_pages_back_without_overlap(api: Api, alice: Registered) -> None:
    room_id = await _room_with_texts(api, alice, 12)
    status, sync = await api.request(
        "GET",
        "/sync",
        token=alice.access_token,
        params={"filter": json.dumps({"room": {"timeline": {"limit": 4}}})},
    )
    assert status == 200, sync
    timeline = sync["rooms"]["join"][room_id]["timeline"]
    older = await _page(api, alice, room_id, dir="b", limit=4, **{"from": timeline["prev_batch"]})
    assert _texts(timeline["events"]) == ["m8", "m9", "m10", "m11"]
    seen = {e["event_id"] for e in timeline["events"]}
    assert not seen & {e["event_id"] for e in older["chunk"]}
    assert _texts(older["chunk"]) == ["m7", "m6", "m5", "m4"]


async def test_type_and_sender_filters(api: Api, alice: Registered, bob: Registered) -> None:
    room_id = await _room_with_texts(api, alice, 2, preset="public_chat")
    await api.join_ok(bob.access_token, room_id)
    await api.send_text(bob.access_token, room_id, "from bob")
    only_texts = await _paginate(
        api, alice, room_id, dir="b", limit=2, filter={"types": ["m.room.message"]}
    )
    assert _texts(only_texts) == ["from bob", "m1", "m0"]
    assert {e["type"] for e in only_texts} == {"m.room.message"}
    bobs = await _paginate(api, alice, room_id, dir="b", filter={"senders": [bob.user_id]})
    assert {e["sender"] for e in bobs} == {bob.user_id}
    assert [e["type"] for e in bobs] == ["m.room.message", "m.room.member"]
    not_state = await _paginate(api, alice, room_id, dir="b", filter={"not_types": ["m.room.*"]})
    assert not_state == []


async def test_redacted_message_is_served_redacted(api: Api, alice: Registered) -> None:
    room_id = await _room_with_texts(api, alice, 1)
    target = await api.send_text(alice.access_token, room_id, "regret")
    status, body = await api.request(
        "PUT",
        f"/rooms/{q(room_id)}/redact/{q(target)}/r1",
        json={"reason": "typo"},
        token=alice.access_token,
    )
    assert status == 200, body
    events = await _paginate(api, alice, room_id, dir="b")
    redacted = next(e for e in events if e["event_id"] == target)
    assert "body" not in redacted["content"], redacted
    assert redacted["unsigned"]["redacted_because"]["type"] == "m.room.redaction"


async def test_bad_parameters(api: Api, alice: Registered) -> None:
    room_id = await _room_with_texts(api, alice, 1)
    status, body = await _messages(api, alice, room_id)
    assert_error(status, body, 400, "M_MISSING_PARAM")
    status, body = await _messages(api, alice, room_id, dir="up")
    assert_error(status, body, 400, "M_INVALID_PARAM")
    status, body = await _messages(api, alice, room_id, dir="b", **{"from": "not-a-token"})
    assert_error(status, body, 400, "M_INVALID_PARAM")
    status, body = await _messages(api, alice, room_id, dir="b", limit="many")
    assert_error(status, body, 400, "M_INVALID_PARAM")


async def test_non_member_is_forbidden(api: Api, alice: Registered, bob: Registered) -> None:
    room_id = await _room_with_texts(api, alice, 1)
    status, body = await _messages(api, bob, room_id, dir="b")
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_leaver_sees_nothing_after_leaving(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await _room_with_texts(api, alice, 1, preset="public_chat")
    await api.join_ok(bob.access_token, room_id)
    await api.send_text(alice.access_token, room_id, "bob saw this")
    await api.membership_action_ok(bob.access_token, room_id, "leave")
    await api.send_text(alice.access_token, room_id, "bob never sees this")
    events = await _paginate(api, bob, room_id, dir="b", limit=3)
    assert _texts(events) == ["bob saw this", "m0"]
    assert events[0]["state_key"] == bob.user_id and events[0]["content"]["membership"] == "leave"


async def test_joined_visibility_hides_history_before_the_join(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, preset="public_chat")
    await _set_visibility(api, alice, room_id, "joined")
    await api.send_text(alice.access_token, room_id, "before bob")
    await api.join_ok(bob.access_token, room_id)
    await api.send_text(alice.access_token, room_id, "after bob")
    assert _texts(await _paginate(api, bob, room_id, dir="b")) == ["after bob"]
    assert _texts(await _paginate(api, alice, room_id, dir="b")) == ["after bob", "before bob"]


async def test_shared_visibility_shows_history_before_the_join(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await _room_with_texts(api, alice, 2, preset="public_chat")
    await api.join_ok(bob.access_token, room_id)
    assert _texts(await _paginate(api, bob, room_id, dir="b")) == ["m1", "m0"]


async def test_invited_visibility_shows_history_from_the_invite(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, preset="private_chat")
    await _set_visibility(api, alice, room_id, "invited")
    await api.send_text(alice.access_token, room_id, "before invite")
    await api.membership_action_ok(alice.access_token, room_id, "invite", bob.user_id)
    await api.send_text(alice.access_token, room_id, "while invited")
    await api.join_ok(bob.access_token, room_id)
    assert _texts(await _paginate(api, bob, room_id, dir="b")) == ["while invited"]


async def _event(api: Api, who: Registered, room_id: str, event_id: str) -> tuple[int, Any]:
    return await api.request(
        "GET", f"/rooms/{q(room_id)}/event/{q(event_id)}", token=who.access_token
    )


async def _context(api: Api, who: Registered, room_id: str, event_id: str) -> tuple[int, Any]:
    return await api.request(
        "GET", f"/rooms/{q(room_id)}/context/{q(event_id)}", token=who.access_token
    )


async def test_joined_visibility_hides_earlier_events_from_event_and_context(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, preset="public_chat")
    await _set_visibility(api, alice, room_id, "joined")
    hidden = await api.send_text(alice.access_token, room_id, "before bob")
    await api.join_ok(bob.access_token, room_id)
    seen = await api.send_text(alice.access_token, room_id, "after bob")
    # "Not found" whether the event is unknown or the user may not see it.
    for fetch in (_event, _context):
        status, body = await fetch(api, bob, room_id, hidden)
        assert_error(status, body, 404, "M_NOT_FOUND")
    status, body = await _event(api, bob, room_id, seen)
    assert status == 200 and body["content"]["body"] == "after bob", body
    status, body = await _context(api, bob, room_id, seen)
    assert status == 200 and body["event"]["event_id"] == seen, body
    assert "before bob" not in _texts(body["events_before"])
    status, body = await _event(api, alice, room_id, hidden)
    assert status == 200 and body["content"]["body"] == "before bob", body


async def test_events_after_leaving_are_not_found(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, preset="public_chat")
    await api.join_ok(bob.access_token, room_id)
    seen = await api.send_text(alice.access_token, room_id, "bob saw this")
    await api.membership_action_ok(bob.access_token, room_id, "leave")
    hidden = await api.send_text(alice.access_token, room_id, "bob never sees this")
    for fetch in (_event, _context):
        status, body = await fetch(api, bob, room_id, hidden)
        assert_error(status, body, 404, "M_NOT_FOUND")
        status, body = await fetch(api, bob, room_id, seen)
        assert status == 200, body
    status, body = await _context(api, bob, room_id, seen)
    assert "bob never sees this" not in _texts(body["events_after"])


async def test_invited_visibility_shows_an_invitee_events_from_the_invite(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, preset="private_chat")
    await _set_visibility(api, alice, room_id, "invited")
    hidden = await api.send_text(alice.access_token, room_id, "before invite")
    await api.membership_action_ok(alice.access_token, room_id, "invite", bob.user_id)
    seen = await api.send_text(alice.access_token, room_id, "while invited")
    status, body = await _event(api, bob, room_id, hidden)
    assert_error(status, body, 404, "M_NOT_FOUND")
    status, body = await _event(api, bob, room_id, seen)
    assert status == 200 and body["content"]["body"] == "while invited", body


async def test_world_readable_events_are_served_to_anyone(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, preset="public_chat")
    await _set_visibility(api, alice, room_id, "world_readable")
    target = await api.send_text(alice.access_token, room_id, "for everyone")
    status, body = await _event(api, bob, room_id, target)
    assert status == 200 and body["content"]["body"] == "for everyone", body
    status, body = await _context(api, bob, room_id, target)
    assert status == 200 and body["event"]["event_id"] == target, body


async def test_context_around_an_event(api: Api, alice: Registered) -> None:
    room_id = await _room_with_texts(api, alice, 9)
    texts = await _paginate(api, alice, room_id, dir="f", filter={"types": ["m.room.message"]})
    target = texts[4]["event_id"]
    status, body = await api.request(
        "GET",
        f"/rooms/{q(room_id)}/context/{q(target)}",
        token=alice.access_token,
        params={"limit": "4"},
    )
    assert status == 200, body
    assert body["event"]["event_id"] == target
    assert _texts(body["events_before"]) == ["m3", "m2"]
    assert _texts(body["events_after"]) == ["m5", "m6"]
    assert isinstance(body["state"], list) and body["state"], body
    before = await _page(api, alice, room_id, dir="b", limit=1, **{"from": body["start"]})
    assert _texts(before["chunk"]) == ["m1"]
    after = await _page(api, alice, room_id, dir="f", limit=1, **{"from": body["end"]})
    assert _texts(after["chunk"]) == ["m7"]


async def test_context_of_an_unknown_event_is_not_found(api: Api, alice: Registered) -> None:
    room_id = await _room_with_texts(api, alice, 1)
    status, body = await api.request(
        "GET", f"/rooms/{q(room_id)}/context/{q('$unknown')}", token=alice.access_token
    )
    assert_error(status, body, 404, "M_NOT_FOUND")


async def test_members_at_a_pagination_token(api: Api, alice: Registered, bob: Registered) -> None:
    room_id = await _room_with_texts(api, alice, 1, preset="public_chat")
    before_bob = (await _page(api, alice, room_id, dir="b", limit=1))["start"]
    await api.join_ok(bob.access_token, room_id)
    status, body = await api.request(
        "GET", f"/rooms/{q(room_id)}/members", token=alice.access_token, params={"at": before_bob}
    )
    assert status == 200, body
    assert [e["state_key"] for e in body["chunk"]] == [alice.user_id]
    status, body = await api.request(
        "GET", f"/rooms/{q(room_id)}/members", token=alice.access_token
    )
    assert status == 200, body
    assert {e["state_key"] for e in body["chunk"]} == {alice.user_id, bob.user_id}


async def test_relations_of_an_event(api: Api, alice: Registered) -> None:
    room_id = await _room_with_texts(api, alice, 1)
    [root] = await _paginate(api, alice, room_id, dir="b", filter={"types": ["m.room.message"]})
    edit = {
        "msgtype": "m.text",
        "body": "* m0!",
        "m.new_content": {"msgtype": "m.text", "body": "m0!"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": root["event_id"]},
    }
    reaction = {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": root["event_id"], "key": "x"}
    }
    status, edited = await api.send(alice.access_token, room_id, "m.room.message", edit)
    assert status == 200, edited
    status, reacted = await api.send(alice.access_token, room_id, "m.reaction", reaction)
    assert status == 200, reacted
    base = f"/_matrix/client/v1/rooms/{q(room_id)}/relations/{q(root['event_id'])}"
    for suffix, expected in (
        ("", [reacted["event_id"], edited["event_id"]]),
        ("/m.replace", [edited["event_id"]]),
        ("/m.annotation/m.reaction", [reacted["event_id"]]),
    ):
        status, body = await api.request("GET", base + suffix, token=alice.access_token)
        assert status == 200, body
        assert [e["event_id"] for e in body["chunk"]] == expected, suffix
    status, body = await api.request(
        "GET",
        f"/_matrix/client/v1/rooms/{q(room_id)}/relations/{q('$unknown')}",
        token=alice.access_token,
    )
    assert_error(status, body, 404, "M_NOT_FOUND")
