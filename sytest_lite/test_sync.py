"""/sync as a client sees it: initial, incremental, long-poll, sections, errors."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sytest_lite.client import Api, Registered, assert_error


async def _sync(api: Api, user: Registered, query: str = "timeout=0") -> dict[str, Any]:
    status, body = await api.request("GET", f"/sync?{query}", token=user.access_token)
    assert status == 200, body
    assert isinstance(body, dict)
    return body


def _messages(body: dict[str, Any], room: str) -> list[str]:
    events = body["rooms"]["join"].get(room, {}).get("timeline", {}).get("events", [])
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


async def test_initial_sync_has_the_spec_sections(api: Api, alice: Registered) -> None:
    room = await api.create_room(alice.access_token, name="sync room")
    await api.send_text(alice.access_token, room, "hello")
    body = await _sync(api, alice)
    assert isinstance(body["next_batch"], str)
    assert set(body["rooms"]) >= {"join", "invite", "leave"}
    joined = body["rooms"]["join"][room]
    assert set(joined) >= {"timeline", "state", "ephemeral", "account_data"}
    assert _messages(body, room) == ["hello"]
    assert "prev_batch" in joined["timeline"]


async def test_incremental_sync_has_only_what_is_new(api: Api, alice: Registered) -> None:
    room = await api.create_room(alice.access_token)
    await api.send_text(alice.access_token, room, "old")
    since = (await _sync(api, alice))["next_batch"]
    await api.send_text(alice.access_token, room, "new")
    body = await _sync(api, alice, f"since={since}&timeout=0")
    assert _messages(body, room) == ["new"]


async def test_long_poll_returns_when_another_user_speaks(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room = await api.create_room(alice.access_token, preset="public_chat")
    await api.join_ok(bob.access_token, room)
    since = (await _sync(api, bob))["next_batch"]
    poll = asyncio.create_task(_sync(api, bob, f"since={since}&timeout=10000"))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await api.send_text(alice.access_token, room, "ping")
    body = await poll
    assert time.monotonic() - started < 2
    assert _messages(body, room) == ["ping"]


async def test_invite_shows_in_the_invite_section(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room = await api.create_room(alice.access_token, name="invited")
    await api.membership_action_ok(alice.access_token, room, "invite", bob.user_id)
    body = await _sync(api, bob)
    events = body["rooms"]["invite"][room]["invite_state"]["events"]
    assert any(e["type"] == "m.room.name" and e["content"]["name"] == "invited" for e in events)


async def test_bad_since_is_invalid_param(api: Api, alice: Registered) -> None:
    status, body = await api.request("GET", "/sync?since=nonsense", token=alice.access_token)
    assert_error(status, body, 400, "M_INVALID_PARAM")


async def test_bad_inline_filter_is_a_json_error(api: Api, alice: Registered) -> None:
    status, body = await api.request("GET", "/sync?filter=%7Bnope", token=alice.access_token)
    assert status == 400, body
    assert isinstance(body, dict) and body["errcode"] in ("M_NOT_JSON", "M_BAD_JSON")


async def test_sync_needs_a_token(api: Api) -> None:
    status, body = await api.request("GET", "/sync")
    assert_error(status, body, 401, "M_MISSING_TOKEN")
