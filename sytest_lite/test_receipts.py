"""Spec: "Receipts" (POST /rooms/{roomId}/receipt/{receiptType}/{eventId}) and
"Fully read markers" (POST /rooms/{roomId}/read_markers)."""

from __future__ import annotations

from typing import Any

from sytest_lite.client import Api, Registered, assert_error, q


async def _shared_room(api: Api, alice: Registered, bob: Registered) -> str:
    room_id = await api.create_room(alice.access_token, preset="public_chat")
    await api.join_ok(bob.access_token, room_id)
    return room_id


async def _receipt(
    api: Api, who: Registered, room_id: str, event_id: str, kind: str = "m.read", body: Any = None
) -> tuple[int, Any]:
    return await api.request(
        "POST",
        f"/rooms/{q(room_id)}/receipt/{q(kind)}/{q(event_id)}",
        json={} if body is None else body,
        token=who.access_token,
    )


async def test_read_receipt_returns_an_empty_object(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await _shared_room(api, alice, bob)
    event_id = await api.send_text(alice.access_token, room_id)
    assert await _receipt(api, bob, room_id, event_id) == (200, {})


async def test_private_and_threaded_receipts_are_accepted(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await _shared_room(api, alice, bob)
    event_id = await api.send_text(alice.access_token, room_id)
    assert (await _receipt(api, bob, room_id, event_id, "m.read.private"))[0] == 200
    status, body = await _receipt(api, bob, room_id, event_id, body={"thread_id": "main"})
    assert status == 200, body


async def test_fully_read_receipt_type_is_accepted(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await _shared_room(api, alice, bob)
    event_id = await api.send_text(alice.access_token, room_id)
    assert await _receipt(api, bob, room_id, event_id, "m.fully_read") == (200, {})


async def test_unknown_receipt_type_is_invalid_param(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await _shared_room(api, alice, bob)
    event_id = await api.send_text(alice.access_token, room_id)
    status, body = await _receipt(api, bob, room_id, event_id, "m.delivered")
    assert_error(status, body, 400, "M_INVALID_PARAM")


async def test_empty_thread_id_is_invalid_param(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await _shared_room(api, alice, bob)
    event_id = await api.send_text(alice.access_token, room_id)
    status, body = await _receipt(api, bob, room_id, event_id, body={"thread_id": ""})
    assert_error(status, body, 400, "M_INVALID_PARAM")


async def test_receipt_from_a_non_member_is_forbidden(
    api: Api, alice: Registered, carol: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, preset="public_chat")
    event_id = await api.send_text(alice.access_token, room_id)
    status, body = await _receipt(api, carol, room_id, event_id)
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_receipt_for_an_unknown_event_is_not_found(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await _shared_room(api, alice, bob)
    status, body = await _receipt(api, bob, room_id, "$doesnotexist:localhost")
    assert_error(status, body, 404, "M_NOT_FOUND")


async def test_receipt_needs_an_access_token(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    event_id = await api.send_text(alice.access_token, room_id)
    status, body = await api.request(
        "POST", f"/rooms/{q(room_id)}/receipt/m.read/{q(event_id)}", json={}
    )
    assert_error(status, body, 401, "M_MISSING_TOKEN")


async def test_read_receipt_appears_in_the_other_members_sync(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await _shared_room(api, alice, bob)
    event_id = await api.send_text(alice.access_token, room_id)
    assert (await _receipt(api, bob, room_id, event_id))[0] == 200
    status, body = await api.request("GET", "/sync", token=alice.access_token)
    assert status == 200, body
    ephemeral = body["rooms"]["join"][room_id]["ephemeral"]["events"]
    receipts = [e["content"] for e in ephemeral if e["type"] == "m.receipt"]
    assert receipts and bob.user_id in receipts[0][event_id]["m.read"], ephemeral


async def test_read_markers_accept_all_three_markers(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await _shared_room(api, alice, bob)
    event_id = await api.send_text(alice.access_token, room_id)
    status, body = await api.request(
        "POST",
        f"/rooms/{q(room_id)}/read_markers",
        json={"m.fully_read": event_id, "m.read": event_id, "m.read.private": event_id},
        token=bob.access_token,
    )
    assert (status, body) == (200, {})


async def test_read_marker_appears_as_room_account_data(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await _shared_room(api, alice, bob)
    event_id = await api.send_text(alice.access_token, room_id)
    status, body = await api.request(
        "POST",
        f"/rooms/{q(room_id)}/read_markers",
        json={"m.fully_read": event_id},
        token=bob.access_token,
    )
    assert status == 200, body
    status, body = await api.request("GET", "/sync", token=bob.access_token)
    assert status == 200, body
    account_data = body["rooms"]["join"][room_id]["account_data"]["events"]
    assert {"type": "m.fully_read", "content": {"event_id": event_id}} in account_data


async def test_read_markers_for_an_unknown_event_are_not_found(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await _shared_room(api, alice, bob)
    status, body = await api.request(
        "POST",
        f"/rooms/{q(room_id)}/read_markers",
        json={"m.fully_read": "$doesnotexist:localhost"},
        token=bob.access_token,
    )
    assert_error(status, body, 404, "M_NOT_FOUND")


async def test_read_markers_from_a_non_member_are_forbidden(
    api: Api, alice: Registered, carol: Registered
) -> None:
    room_id = await api.create_room(alice.access_token)
    event_id = await api.send_text(alice.access_token, room_id)
    status, body = await api.request(
        "POST",
        f"/rooms/{q(room_id)}/read_markers",
        json={"m.fully_read": event_id},
        token=carol.access_token,
    )
    assert_error(status, body, 403, "M_FORBIDDEN")
