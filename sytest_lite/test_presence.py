"""Spec: "Presence" (PUT/GET /presence/{userId}/status, m.presence in /sync)."""

from __future__ import annotations

import asyncio
from typing import Any

from sytest_lite.client import Api, Registered, assert_error, q


async def _put(api: Api, who: Registered, user_id: str, body: Any) -> tuple[int, Any]:
    return await api.request(
        "PUT", f"/presence/{q(user_id)}/status", json=body, token=who.access_token
    )


async def _get(api: Api, who: Registered, user_id: str) -> tuple[int, Any]:
    return await api.request("GET", f"/presence/{q(user_id)}/status", token=who.access_token)


async def _sync(api: Api, who: Registered, query: str = "timeout=0") -> dict[str, Any]:
    status, body = await api.request("GET", f"/sync?{query}", token=who.access_token)
    assert status == 200, body
    assert isinstance(body, dict)
    return body


def _presence(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["sender"]: e["content"] for e in body["presence"]["events"]}


async def _shared_room(api: Api, alice: Registered, bob: Registered) -> str:
    room_id = await api.create_room(alice.access_token, preset="public_chat")
    await api.join_ok(bob.access_token, room_id)
    return room_id


async def test_set_and_get_own_presence(api: Api, alice: Registered) -> None:
    body = {"presence": "online", "status_msg": "I am here."}
    assert await _put(api, alice, alice.user_id, body) == (200, {})
    status, got = await _get(api, alice, alice.user_id)
    assert status == 200
    assert got["presence"] == "online"
    assert got["status_msg"] == "I am here."
    assert isinstance(got["last_active_ago"], int)
    assert got["currently_active"] is True


async def test_setting_another_users_presence_is_forbidden(
    api: Api, alice: Registered, bob: Registered
) -> None:
    await _shared_room(api, alice, bob)
    status, body = await _put(api, bob, alice.user_id, {"presence": "offline"})
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_unknown_presence_state_is_rejected(api: Api, alice: Registered) -> None:
    status, body = await _put(api, alice, alice.user_id, {"presence": "sleeping"})
    assert_error(status, body, 400, "M_BAD_JSON")
    status, body = await _put(api, alice, alice.user_id, {"status_msg": "no state"})
    assert_error(status, body, 400, "M_BAD_JSON")


async def test_room_mate_can_read_presence_and_stranger_cannot(
    api: Api, alice: Registered, bob: Registered, carol: Registered
) -> None:
    await _shared_room(api, alice, bob)
    await _put(api, alice, alice.user_id, {"presence": "unavailable", "status_msg": "lunch"})
    status, got = await _get(api, bob, alice.user_id)
    assert status == 200
    assert (got["presence"], got["status_msg"]) == ("unavailable", "lunch")
    status, body = await _get(api, carol, alice.user_id)
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_sync_carries_room_mates_presence_changes(
    api: Api, alice: Registered, bob: Registered
) -> None:
    await _shared_room(api, alice, bob)
    since = (await _sync(api, bob))["next_batch"]
    await _put(api, alice, alice.user_id, {"presence": "online", "status_msg": "back"})
    body = await _sync(api, bob, f"since={since}&timeout=5000")
    content = _presence(body)[alice.user_id]
    assert (content["presence"], content["status_msg"]) == ("online", "back")
    again = await _sync(api, bob, f"since={body['next_batch']}&timeout=0")
    assert alice.user_id not in _presence(again)


async def test_presence_change_wakes_a_long_poll(
    api: Api, alice: Registered, bob: Registered
) -> None:
    await _shared_room(api, alice, bob)
    since = (await _sync(api, bob))["next_batch"]
    poll = asyncio.create_task(_sync(api, bob, f"since={since}&timeout=10000"))
    await asyncio.sleep(0.3)
    await _put(api, alice, alice.user_id, {"presence": "unavailable"})
    body = await asyncio.wait_for(poll, 5)
    assert _presence(body)[alice.user_id]["presence"] == "unavailable"


async def test_set_presence_on_sync(api: Api, alice: Registered) -> None:
    await _sync(api, alice, "timeout=0&set_presence=offline")
    assert (await _get(api, alice, alice.user_id))[1]["presence"] == "offline"
    await _sync(api, alice, "timeout=0&set_presence=unavailable")
    assert (await _get(api, alice, alice.user_id))[1]["presence"] == "unavailable"
    status, body = await api.request("GET", "/sync?set_presence=away", token=alice.access_token)
    assert_error(status, body, 400, "M_INVALID_PARAM")
