"""Spec: "Typing Notifications" (PUT /rooms/{roomId}/typing/{userId})."""

from __future__ import annotations

import asyncio
from typing import Any

from sytest_lite.client import Api, Registered, assert_error, q


async def _typing(
    api: Api, who: Registered, room_id: str, user_id: str, body: Any
) -> tuple[int, Any]:
    return await api.request(
        "PUT", f"/rooms/{q(room_id)}/typing/{q(user_id)}", json=body, token=who.access_token
    )


async def test_start_and_stop_typing(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    start = {"typing": True, "timeout": 30000}
    assert await _typing(api, alice, room_id, alice.user_id, start) == (200, {})
    assert await _typing(api, alice, room_id, alice.user_id, {"typing": False}) == (200, {})


async def test_typing_for_another_user_is_forbidden(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, preset="public_chat")
    await api.join_ok(bob.access_token, room_id)
    status, body = await _typing(api, bob, room_id, alice.user_id, {"typing": True})
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_typing_in_a_room_not_joined_is_forbidden(
    api: Api, alice: Registered, carol: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, preset="public_chat")
    status, body = await _typing(api, carol, room_id, carol.user_id, {"typing": True})
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_typing_without_the_typing_field_is_bad_json(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    status, body = await _typing(api, alice, room_id, alice.user_id, {"timeout": 1000})
    assert_error(status, body, 400, "M_BAD_JSON")


async def test_typing_needs_an_access_token(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    status, body = await api.request(
        "PUT", f"/rooms/{q(room_id)}/typing/{q(alice.user_id)}", json={"typing": True}
    )
    assert_error(status, body, 401, "M_MISSING_TOKEN")


def _typers(body: Any, room_id: str) -> list[str] | None:
    room = body.get("rooms", {}).get("join", {}).get(room_id, {})
    for event in room.get("ephemeral", {}).get("events", []):
        if event["type"] == "m.typing":
            return list(event["content"]["user_ids"])
    return None


async def test_typing_shows_in_sync_and_its_stop_follows(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, preset="public_chat")
    await api.join_ok(bob.access_token, room_id)
    assert (await _typing(api, bob, room_id, bob.user_id, {"typing": True}))[0] == 200
    status, body = await api.request("GET", "/sync", token=alice.access_token)
    assert status == 200, body
    assert _typers(body, room_id) == [bob.user_id], body
    assert (await _typing(api, bob, room_id, bob.user_id, {"typing": False}))[0] == 200
    status, body = await api.request(
        "GET",
        "/sync",
        token=alice.access_token,
        params={"since": body["next_batch"], "timeout": "5000"},
    )
    assert status == 200, body
    assert _typers(body, room_id) == [], body


async def test_typing_expires_after_its_timeout(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, preset="public_chat")
    await api.join_ok(bob.access_token, room_id)
    start = {"typing": True, "timeout": 500}
    assert (await _typing(api, bob, room_id, bob.user_id, start))[0] == 200
    status, body = await api.request("GET", "/sync", token=alice.access_token)
    assert status == 200, body
    await asyncio.sleep(1.0)
    status, body = await api.request(
        "GET",
        "/sync",
        token=alice.access_token,
        params={"since": body["next_batch"], "timeout": "5000"},
    )
    assert status == 200, body
    assert _typers(body, room_id) == [], body
