"""Spec: "Room directory" (GET/POST /publicRooms, GET/PUT /directory/list/room/{roomId})
and createRoom's `visibility`."""

from __future__ import annotations

import secrets
from typing import Any

from sytest_lite.client import Api, Registered, assert_error, q


def _word() -> str:
    return "d" + secrets.token_hex(6)


async def _listed(api: Api, who: Registered, term: str, **body: Any) -> dict[str, Any]:
    status, page = await api.request(
        "POST",
        "/publicRooms",
        json={"filter": {"generic_search_term": term}, **body},
        token=who.access_token,
    )
    assert status == 200, page
    assert isinstance(page["chunk"], list), page
    return page


async def test_room_created_public_is_listed(api: Api, alice: Registered) -> None:
    word = _word()
    room = await api.create_room(
        alice.access_token, visibility="public", name=f"Room {word}", topic="about things"
    )
    page = await _listed(api, alice, word)
    assert [r["room_id"] for r in page["chunk"]] == [room]
    entry = page["chunk"][0]
    assert entry["name"] == f"Room {word}" and entry["topic"] == "about things"
    assert entry["num_joined_members"] == 1
    assert entry["world_readable"] is False and entry["guest_can_join"] is False
    assert isinstance(page["total_room_count_estimate"], int)
    status, body = await api.request("GET", f"/directory/list/room/{q(room)}")
    assert status == 200 and body == {"visibility": "public"}


async def test_get_public_rooms_needs_no_token_and_pages(api: Api, alice: Registered) -> None:
    for _ in range(3):
        await api.create_room(alice.access_token, visibility="public", name=_word())
    status, first = await api.request("GET", "/publicRooms", params={"limit": "1"})
    assert status == 200, first
    assert len(first["chunk"]) == 1 and isinstance(first["next_batch"], str)
    status, second = await api.request(
        "GET", "/publicRooms", params={"limit": "1", "since": first["next_batch"]}
    )
    assert status == 200, second
    assert second["chunk"][0]["room_id"] != first["chunk"][0]["room_id"]
    assert isinstance(second["prev_batch"], str)


async def test_visibility_can_be_set_by_the_room_admin_only(
    api: Api, alice: Registered, bob: Registered
) -> None:
    word = _word()
    room = await api.create_room(alice.access_token, preset="public_chat", name=word)
    assert (await _listed(api, alice, word))["chunk"] == []
    await api.join_ok(bob.access_token, room)
    status, body = await api.request(
        "PUT",
        f"/directory/list/room/{q(room)}",
        json={"visibility": "public"},
        token=bob.access_token,
    )
    assert_error(status, body, 403, "M_FORBIDDEN")
    status, body = await api.request(
        "PUT",
        f"/directory/list/room/{q(room)}",
        json={"visibility": "public"},
        token=alice.access_token,
    )
    assert status == 200 and body == {}, body
    assert [r["room_id"] for r in (await _listed(api, alice, word))["chunk"]] == [room]
    status, body = await api.request(
        "PUT",
        f"/directory/list/room/{q(room)}",
        json={"visibility": "private"},
        token=alice.access_token,
    )
    assert status == 200, body
    assert (await _listed(api, alice, word))["chunk"] == []


async def test_unknown_room_visibility_is_404(api: Api) -> None:
    status, body = await api.request("GET", "/directory/list/room/!nowhere:localhost")
    assert_error(status, body, 404, "M_NOT_FOUND")


async def test_bad_since_token_is_rejected(api: Api) -> None:
    status, body = await api.request("GET", "/publicRooms", params={"since": "garbage"})
    assert_error(status, body, 400, "M_INVALID_PARAM")
