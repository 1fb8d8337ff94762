"""Spec: PUT /rooms/{roomId}/send/{eventType}/{txnId} (transaction idempotency),
GET /rooms/{roomId}/event/{eventId}, "Redactions", event relations
(m.replace edits, m.annotation reactions) and power-level gating of event types."""

from __future__ import annotations

import asyncio

from sytest_lite.client import Api, Registered, assert_error, q

DEVICE_COMMAND = "com.linkchat.device.command"


async def _get_event(api: Api, who: Registered, room_id: str, event_id: str) -> tuple[int, dict]:
    return await api.request(
        "GET", f"/rooms/{q(room_id)}/event/{q(event_id)}", token=who.access_token
    )


async def test_send_returns_an_event_id(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    status, body = await api.send(
        alice.access_token, room_id, "m.room.message", {"msgtype": "m.text", "body": "hi"}
    )
    assert status == 200, body
    assert isinstance(body["event_id"], str) and body["event_id"].startswith("$"), body


async def test_same_txn_id_returns_the_same_event_id(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    content = {"msgtype": "m.text", "body": "only once"}
    first = await api.send(alice.access_token, room_id, "m.room.message", content, "txn-abc")
    again = await api.send(alice.access_token, room_id, "m.room.message", content, "txn-abc")
    assert first[0] == again[0] == 200, (first, again)
    assert first[1]["event_id"] == again[1]["event_id"], (first, again)


async def test_retransmit_creates_no_duplicate_in_history(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    content = {"msgtype": "m.text", "body": "dedupe me"}
    for _ in range(3):
        status, body = await api.send(alice.access_token, room_id, "m.room.message", content, "t1")
        assert status == 200, body
    status, body = await api.request(
        "GET",
        f"/rooms/{q(room_id)}/messages",
        token=alice.access_token,
        params={"dir": "b", "limit": "50"},
    )
    assert status == 200, body
    bodies = [ev["content"].get("body") for ev in body["chunk"] if ev["type"] == "m.room.message"]
    assert bodies.count("dedupe me") == 1, body


async def test_different_txn_ids_create_different_events(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    content = {"msgtype": "m.text", "body": "twice"}
    _, first = await api.send(alice.access_token, room_id, "m.room.message", content, "txn-1")
    _, second = await api.send(alice.access_token, room_id, "m.room.message", content, "txn-2")
    assert first["event_id"] != second["event_id"], (first, second)


async def test_txn_ids_are_scoped_to_the_access_token(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, preset="public_chat")
    await api.join_ok(bob.access_token, room_id)
    content = {"msgtype": "m.text", "body": "same txn"}
    _, first = await api.send(alice.access_token, room_id, "m.room.message", content, "shared")
    _, second = await api.send(bob.access_token, room_id, "m.room.message", content, "shared")
    assert first["event_id"] != second["event_id"], (first, second)


async def test_get_event_returns_the_sent_event(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    event_id = await api.send_text(alice.access_token, room_id, "fetch me")
    status, event = await _get_event(api, alice, room_id, event_id)
    assert status == 200, event
    assert event["event_id"] == event_id, event
    assert event["room_id"] == room_id, event
    assert event["type"] == "m.room.message", event
    assert event["sender"] == alice.user_id, event
    assert event["content"] == {"msgtype": "m.text", "body": "fetch me"}, event
    assert isinstance(event["origin_server_ts"], int), event
    assert "state_key" not in event, event


async def test_get_unknown_event_is_not_found(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    status, body = await _get_event(api, alice, room_id, "$doesnotexist")
    assert_error(status, body, 404, "M_NOT_FOUND")


async def test_non_member_cannot_get_event(api: Api, alice: Registered, bob: Registered) -> None:
    room_id = await api.create_room(alice.access_token, preset="private_chat")
    event_id = await api.send_text(alice.access_token, room_id, "private")
    status, body = await _get_event(api, bob, room_id, event_id)
    # "The event was not found or you do not have permission to read this event."
    assert_error(status, body, 404, "M_NOT_FOUND")


async def test_unknown_event_types_are_carried_untouched(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    # Integers only: room versions 6+ require canonical JSON, which has no floats.
    content = {"nested": {"list": [1, -2, "three", None, True]}, "unicode": "h\u00e9llo \u2603"}
    status, body = await api.send(alice.access_token, room_id, "org.example.custom", content)
    assert status == 200, body
    status, event = await _get_event(api, alice, room_id, body["event_id"])
    assert status == 200, event
    assert event["type"] == "org.example.custom", event
    assert event["content"] == content, event


async def test_redacted_event_is_served_with_empty_content_and_redacted_because(
    api: Api, alice: Registered
) -> None:
    room_id = await api.create_room(alice.access_token)
    event_id = await api.send_text(alice.access_token, room_id, "regrettable")
    status, body = await api.request(
        "PUT",
        f"/rooms/{q(room_id)}/redact/{q(event_id)}/redact-txn-1",
        json={"reason": "typo"},
        token=alice.access_token,
    )
    assert status == 200, body
    redaction_id = body["event_id"]
    assert isinstance(redaction_id, str) and redaction_id.startswith("$"), body

    status, event = await _get_event(api, alice, room_id, event_id)
    assert status == 200, event
    assert event["content"] == {}, event
    because = event["unsigned"]["redacted_because"]
    assert because["type"] == "m.room.redaction", because
    assert because["event_id"] == redaction_id, because
    assert because["sender"] == alice.user_id, because
    assert because["content"].get("reason") == "typo", because


async def test_redaction_event_can_be_fetched(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    event_id = await api.send_text(alice.access_token, room_id)
    _, body = await api.request(
        "PUT",
        f"/rooms/{q(room_id)}/redact/{q(event_id)}/r1",
        json={},
        token=alice.access_token,
    )
    status, redaction = await _get_event(api, alice, room_id, body["event_id"])
    assert status == 200, redaction
    assert redaction["type"] == "m.room.redaction", redaction
    # Room versions up to 10 put `redacts` at the top level, 11+ in content.
    assert event_id in (redaction.get("redacts"), redaction["content"].get("redacts")), redaction


async def test_member_without_power_cannot_redact_others_events(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, preset="public_chat")
    await api.join_ok(bob.access_token, room_id)
    event_id = await api.send_text(alice.access_token, room_id, "alice's words")
    status, body = await api.request(
        "PUT",
        f"/rooms/{q(room_id)}/redact/{q(event_id)}/r-bob",
        json={},
        token=bob.access_token,
    )
    assert_error(status, body, 403, "M_FORBIDDEN")
    _, event = await _get_event(api, alice, room_id, event_id)
    assert event["content"]["body"] == "alice's words", event


async def test_member_can_redact_own_event(api: Api, alice: Registered, bob: Registered) -> None:
    room_id = await api.create_room(alice.access_token, preset="public_chat")
    await api.join_ok(bob.access_token, room_id)
    event_id = await api.send_text(bob.access_token, room_id, "oops")
    status, body = await api.request(
        "PUT",
        f"/rooms/{q(room_id)}/redact/{q(event_id)}/r-own",
        json={},
        token=bob.access_token,
    )
    assert status == 200, body
    _, event = await _get_event(api, bob, room_id, event_id)
    assert event["content"] == {}, event


async def test_edit_with_m_replace_relation_is_accepted(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    original = await api.send_text(alice.access_token, room_id, "helo")
    content = {
        "msgtype": "m.text",
        "body": "* hello",
        "m.new_content": {"msgtype": "m.text", "body": "hello"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": original},
    }
    status, body = await api.send(alice.access_token, room_id, "m.room.message", content)
    assert status == 200, body
    _, edit = await _get_event(api, alice, room_id, body["event_id"])
    assert edit["content"]["m.relates_to"] == content["m.relates_to"], edit
    assert edit["content"]["m.new_content"] == content["m.new_content"], edit


async def test_reaction_with_m_annotation_relation_is_accepted(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, preset="public_chat")
    await api.join_ok(bob.access_token, room_id)
    target = await api.send_text(alice.access_token, room_id, "react to me")
    relates_to = {"rel_type": "m.annotation", "event_id": target, "key": "\U0001f44d"}
    status, body = await api.send(
        bob.access_token, room_id, "m.reaction", {"m.relates_to": relates_to}
    )
    assert status == 200, body
    _, reaction = await _get_event(api, alice, room_id, body["event_id"])
    assert reaction["type"] == "m.reaction", reaction
    assert reaction["content"]["m.relates_to"] == relates_to, reaction


async def test_reply_with_in_reply_to_is_accepted(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    target = await api.send_text(alice.access_token, room_id, "question?")
    content = {
        "msgtype": "m.text",
        "body": "answer",
        "m.relates_to": {"m.in_reply_to": {"event_id": target}},
    }
    status, body = await api.send(alice.access_token, room_id, "m.room.message", content)
    assert status == 200, body


async def test_device_command_needs_the_power_level_set_for_its_type(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(
        alice.access_token,
        preset="public_chat",
        power_level_content_override={"events": {DEVICE_COMMAND: 50}},
    )
    await api.join_ok(bob.access_token, room_id)
    command = {"command": "ring", "target_device": "PHONE1"}

    status, body = await api.send(bob.access_token, room_id, DEVICE_COMMAND, command)
    assert_error(status, body, 403, "M_FORBIDDEN")

    status, body = await api.send(alice.access_token, room_id, DEVICE_COMMAND, command)
    assert status == 200, body


async def test_device_command_allowed_after_power_is_granted(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(
        alice.access_token,
        preset="public_chat",
        power_level_content_override={"events": {DEVICE_COMMAND: 50}},
    )
    await api.join_ok(bob.access_token, room_id)
    power = await api.state_content(alice.access_token, room_id, "m.room.power_levels")
    power.setdefault("users", {})[bob.user_id] = 50
    status, body = await api.put_state(alice.access_token, room_id, "m.room.power_levels", power)
    assert status == 200, body

    status, body = await api.send(
        bob.access_token, room_id, DEVICE_COMMAND, {"command": "ring", "target_device": "PHONE1"}
    )
    assert status == 200, body


async def test_events_default_gates_plain_messages(
    api: Api, alice: Registered, bob: Registered
) -> None:
    # A broadcast channel: members may read but not post.
    room_id = await api.create_room(
        alice.access_token,
        preset="public_chat",
        power_level_content_override={"events_default": 50},
    )
    await api.join_ok(bob.access_token, room_id)
    status, body = await api.send(
        bob.access_token, room_id, "m.room.message", {"msgtype": "m.text", "body": "me too"}
    )
    assert_error(status, body, 403, "M_FORBIDDEN")
    await api.send_text(alice.access_token, room_id, "announcement")


async def test_second_identical_reaction_is_duplicate_annotation(
    api: Api, alice: Registered
) -> None:
    room_id = await api.create_room(alice.access_token)
    target = await api.send_text(alice.access_token, room_id, "react twice")
    reaction = {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": "+1"}}
    status, first = await api.send(alice.access_token, room_id, "m.reaction", reaction)
    assert status == 200, first
    status, body = await api.send(alice.access_token, room_id, "m.reaction", reaction)
    assert_error(status, body, 400, "M_DUPLICATE_ANNOTATION")
    # A different key is a different annotation.
    other = {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": "heart"}}
    status, body = await api.send(alice.access_token, room_id, "m.reaction", other)
    assert status == 200, body


async def test_reaction_can_be_sent_again_after_redacting_the_first(
    api: Api, alice: Registered
) -> None:
    room_id = await api.create_room(alice.access_token)
    target = await api.send_text(alice.access_token, room_id, "change my mind")
    reaction = {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": "+1"}}
    _, first = await api.send(alice.access_token, room_id, "m.reaction", reaction)
    status, body = await api.request(
        "PUT",
        f"/rooms/{q(room_id)}/redact/{q(first['event_id'])}/undo-1",
        json={},
        token=alice.access_token,
    )
    assert status == 200, body
    status, body = await api.send(alice.access_token, room_id, "m.reaction", reaction)
    assert status == 200, body


async def test_redacted_member_event_keeps_only_membership(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    status, body = await api.put_state(
        alice.access_token,
        room_id,
        "m.room.member",
        {"membership": "join", "displayname": "Alice Secret-Name"},
        state_key=alice.user_id,
    )
    assert status == 200, body
    member_event = body["event_id"]
    status, body = await api.request(
        "PUT",
        f"/rooms/{q(room_id)}/redact/{q(member_event)}/r-member",
        json={},
        token=alice.access_token,
    )
    assert status == 200, body
    _, event = await _get_event(api, alice, room_id, member_event)
    assert event["content"] == {"membership": "join"}, event
    assert event["state_key"] == alice.user_id, event


async def test_concurrent_retransmits_of_one_txn_yield_one_event(
    api: Api, alice: Registered
) -> None:
    room_id = await api.create_room(alice.access_token)
    content = {"msgtype": "m.text", "body": "racing retransmits"}
    results = await asyncio.gather(
        *(
            api.send(alice.access_token, room_id, "m.room.message", content, "race")
            for _ in range(8)
        )
    )
    assert all(status == 200 for status, _ in results), results
    assert len({body["event_id"] for _, body in results}) == 1, results


async def test_concurrent_sends_from_many_members_all_succeed(
    api: Api, alice: Registered, bob: Registered, carol: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, preset="public_chat")
    await api.join_ok(bob.access_token, room_id)
    await api.join_ok(carol.access_token, room_id)
    senders = [alice, bob, carol] * 10
    results = await asyncio.gather(
        *(
            api.send(
                s.access_token, room_id, "m.room.message", {"msgtype": "m.text", "body": str(i)}
            )
            for i, s in enumerate(senders)
        )
    )
    assert all(status == 200 for status, _ in results), results
    assert len({body["event_id"] for _, body in results}) == len(senders)
