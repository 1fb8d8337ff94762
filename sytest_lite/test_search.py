"""Spec: POST /search ("Server Side Search"): room_events by word, order, paging,
context, groups, filters, and "the search results MUST only include events the user
is allowed to see"."""

from __future__ import annotations

import secrets
from typing import Any

from sytest_lite.client import Api, Registered, assert_error, q


def _word() -> str:
    return "s" + "".join(secrets.choice("bcdfghjklmnpqrstvz") for _ in range(10))


async def _search(
    api: Api, who: Registered, criteria: dict[str, Any], next_batch: str | None = None
) -> tuple[int, Any]:
    return await api.request(
        "POST",
        "/search",
        json={"search_categories": {"room_events": criteria}},
        token=who.access_token,
        params={"next_batch": next_batch} if next_batch else None,
    )


async def _results(api: Api, who: Registered, **criteria: Any) -> dict[str, Any]:
    status, body = await _search(api, who, criteria)
    assert status == 200, body
    found = body["search_categories"]["room_events"]
    assert isinstance(found["results"], list) and isinstance(found["count"], int), found
    return found


def _ids(found: dict[str, Any]) -> list[str]:
    return [r["result"]["event_id"] for r in found["results"]]


async def test_search_finds_a_message_with_its_room_and_highlights(
    api: Api, alice: Registered
) -> None:
    room = await api.create_room(alice.access_token)
    word = _word()
    hit = await api.send_text(alice.access_token, room, f"hello {word} world")
    await api.send_text(alice.access_token, room, "unrelated")
    found = await _results(api, alice, search_term=word, keys=["content.body"])
    assert _ids(found) == [hit] and found["count"] == 1
    result = found["results"][0]
    assert isinstance(result["rank"], int | float)
    assert result["result"]["room_id"] == room
    assert result["result"]["content"]["body"] == f"hello {word} world"
    assert word in found["highlights"]


async def test_recent_order_pages_with_next_batch(api: Api, alice: Registered) -> None:
    room = await api.create_room(alice.access_token)
    word = _word()
    sent = [await api.send_text(alice.access_token, room, f"{word} {n}") for n in range(5)]
    criteria = {"search_term": word, "order_by": "recent", "filter": {"limit": 2}}
    seen: list[str] = []
    next_batch = None
    for _ in range(10):
        status, body = await _search(api, alice, criteria, next_batch)
        assert status == 200, body
        found = body["search_categories"]["room_events"]
        seen += _ids(found)
        next_batch = found.get("next_batch")
        if next_batch is None:
            break
    assert seen == list(reversed(sent))


async def test_event_context_and_room_groups(api: Api, alice: Registered) -> None:
    room = await api.create_room(alice.access_token)
    word = _word()
    before = await api.send_text(alice.access_token, room, "just before")
    hit = await api.send_text(alice.access_token, room, f"the {word}")
    after = await api.send_text(alice.access_token, room, "just after")
    found = await _results(
        api,
        alice,
        search_term=word,
        event_context={"before_limit": 1, "after_limit": 1, "include_profile": True},
        groupings={"group_by": [{"key": "room_id"}]},
    )
    context = found["results"][0]["context"]
    assert [e["event_id"] for e in context["events_before"]] == [before]
    assert [e["event_id"] for e in context["events_after"]] == [after]
    assert alice.user_id in context["profile_info"]
    assert found["groups"]["room_id"][room]["results"] == [hit]


async def test_search_never_returns_events_of_rooms_the_user_is_not_in(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room = await api.create_room(alice.access_token, preset="public_chat")
    word = _word()
    await api.send_text(alice.access_token, room, f"{word} for members only")
    assert _ids(await _results(api, bob, search_term=word)) == []
    await api.join_ok(bob.access_token, room)
    await api.membership_action_ok(bob.access_token, room, "leave")
    await api.send_text(alice.access_token, room, f"{word} said after bob left")
    found = await _results(api, bob, search_term=word)
    assert [r["result"]["content"]["body"] for r in found["results"]] == [
        f"{word} for members only"
    ]


async def test_redacted_messages_are_not_found(api: Api, alice: Registered) -> None:
    room = await api.create_room(alice.access_token)
    word = _word()
    hit = await api.send_text(alice.access_token, room, word)
    status, body = await api.request(
        "PUT", f"/rooms/{q(room)}/redact/{q(hit)}/t1", json={}, token=alice.access_token
    )
    assert status == 200, body
    assert _ids(await _results(api, alice, search_term=word)) == []


async def test_filter_by_room_and_sender(api: Api, alice: Registered, bob: Registered) -> None:
    word = _word()
    first = await api.create_room(alice.access_token, preset="public_chat")
    second = await api.create_room(alice.access_token)
    await api.join_ok(bob.access_token, first)
    mine = await api.send_text(alice.access_token, first, word)
    bobs = await api.send_text(bob.access_token, first, word)
    await api.send_text(alice.access_token, second, word)
    assert set(_ids(await _results(api, alice, search_term=word, filter={"rooms": [first]}))) == {
        mine,
        bobs,
    }
    only_bob = {"senders": [bob.user_id]}
    assert _ids(await _results(api, alice, search_term=word, filter=only_bob)) == [bobs]


async def test_bad_search_requests_are_rejected(api: Api, alice: Registered) -> None:
    status, body = await api.request(
        "POST", "/search", json={"search_categories": {"room_events": {}}}, token=alice.access_token
    )
    assert_error(status, body, 400, "M_BAD_JSON")
    status, body = await _search(api, alice, {"search_term": "x", "order_by": "newest"})
    assert_error(status, body, 400, "M_BAD_JSON")
    status, body = await _search(api, alice, {"search_term": "x", "keys": ["content.nope"]})
    assert_error(status, body, 400, "M_BAD_JSON")
    status, body = await _search(api, alice, {"search_term": "x"}, next_batch="%%%")
    assert_error(status, body, 400, "M_INVALID_PARAM")
    status, body = await api.request(
        "POST", "/search", json={"search_categories": {"room_events": {"search_term": "x"}}}
    )
    assert_error(status, body, 401, "M_MISSING_TOKEN")
