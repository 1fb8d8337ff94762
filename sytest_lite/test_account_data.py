"""Spec: "Client Config" (account data, global and per room), "Room Tagging" and
"Ignoring Users", as a client sees them."""

from __future__ import annotations

from typing import Any

from sytest_lite.client import Api, Registered, assert_error, q


async def _sync(api: Api, user: Registered, since: str | None = None) -> dict[str, Any]:
    query = "/sync?timeout=0" + (f"&since={since}" if since else "")
    status, body = await api.request("GET", query, token=user.access_token)
    assert status == 200, body
    assert isinstance(body, dict)
    return body


async def test_global_account_data_is_stored_and_synced(api: Api, alice: Registered) -> None:
    path = f"/user/{q(alice.user_id)}/account_data/org.example.test"
    assert await api.request("PUT", path, json={"a": 1}, token=alice.access_token) == (200, {})
    assert await api.request("GET", path, token=alice.access_token) == (200, {"a": 1})
    events = (await _sync(api, alice))["account_data"]["events"]
    assert {"type": "org.example.test", "content": {"a": 1}} in events


async def test_room_account_data_is_stored_and_synced(api: Api, alice: Registered) -> None:
    room = await api.create_room(alice.access_token)
    path = f"/user/{q(alice.user_id)}/rooms/{q(room)}/account_data/org.example.room"
    assert await api.request("PUT", path, json={"b": 2}, token=alice.access_token) == (200, {})
    assert await api.request("GET", path, token=alice.access_token) == (200, {"b": 2})
    events = (await _sync(api, alice))["rooms"]["join"][room]["account_data"]["events"]
    assert {"type": "org.example.room", "content": {"b": 2}} in events


async def test_another_users_account_data_is_forbidden(
    api: Api, alice: Registered, bob: Registered
) -> None:
    path = f"/user/{q(alice.user_id)}/account_data/org.example.test"
    await api.request("PUT", path, json={"a": 1}, token=alice.access_token)
    status, body = await api.request("GET", path, token=bob.access_token)
    assert_error(status, body, 403, "M_FORBIDDEN")
    status, body = await api.request("PUT", path, json={"a": 2}, token=bob.access_token)
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_missing_account_data_is_not_found(api: Api, alice: Registered) -> None:
    path = f"/user/{q(alice.user_id)}/account_data/org.example.missing"
    status, body = await api.request("GET", path, token=alice.access_token)
    assert_error(status, body, 404, "M_NOT_FOUND")


async def test_fully_read_cannot_be_set_as_account_data(api: Api, alice: Registered) -> None:
    room = await api.create_room(alice.access_token)
    path = f"/user/{q(alice.user_id)}/rooms/{q(room)}/account_data/m.fully_read"
    status, body = await api.request("PUT", path, json={"event_id": "$x"}, token=alice.access_token)
    assert_error(status, body, 405, "M_BAD_JSON")


async def test_tags_are_added_read_and_removed(api: Api, alice: Registered) -> None:
    room = await api.create_room(alice.access_token)
    tags = f"/user/{q(alice.user_id)}/rooms/{q(room)}/tags"
    status, _ = await api.request(
        "PUT", f"{tags}/m.favourite", json={"order": 0.5}, token=alice.access_token
    )
    assert status == 200
    assert await api.request("GET", tags, token=alice.access_token) == (
        200,
        {"tags": {"m.favourite": {"order": 0.5}}},
    )
    events = (await _sync(api, alice))["rooms"]["join"][room]["account_data"]["events"]
    assert {"type": "m.tag", "content": {"tags": {"m.favourite": {"order": 0.5}}}} in events
    status, _ = await api.request("DELETE", f"{tags}/m.favourite", token=alice.access_token)
    assert status == 200
    assert await api.request("GET", tags, token=alice.access_token) == (200, {"tags": {}})


async def test_an_ignored_users_messages_are_not_synced(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room = await api.create_room(alice.access_token, preset="public_chat")
    await api.join_ok(bob.access_token, room)
    status, _ = await api.request(
        "PUT",
        f"/user/{q(bob.user_id)}/account_data/m.ignored_user_list",
        json={"ignored_users": {alice.user_id: {}}},
        token=bob.access_token,
    )
    assert status == 200
    since = (await _sync(api, bob))["next_batch"]
    await api.send_text(alice.access_token, room, "you cannot hear me")
    body = await _sync(api, bob, since)
    events = body["rooms"]["join"].get(room, {}).get("timeline", {}).get("events", [])
    assert not [e for e in events if e["type"] == "m.room.message"]
