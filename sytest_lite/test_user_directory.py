"""Spec: "User directory" (POST /user_directory/search) and "Capabilities negotiation"
(GET /capabilities)."""

from __future__ import annotations

from typing import Any

from sytest_lite.client import Api, Registered, assert_error, q


async def _search(api: Api, who: Registered, term: str, **body: Any) -> tuple[int, Any]:
    return await api.request(
        "POST",
        "/user_directory/search",
        json={"search_term": term, **body},
        token=who.access_token,
    )


async def _name(api: Api, who: Registered, name: str) -> None:
    status, body = await api.request(
        "PUT",
        f"/profile/{q(who.user_id)}/displayname",
        json={"displayname": name},
        token=who.access_token,
    )
    assert status == 200, body


async def test_a_room_mate_is_found_by_display_name(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room = await api.create_room(alice.access_token, preset="private_chat")
    status, body = await api.membership_action(
        alice.access_token, room, "invite", user_id=bob.user_id
    )
    assert status == 200, body
    await api.join_ok(bob.access_token, room)
    await _name(api, bob, "Bartholomew Quux")
    status, body = await _search(api, alice, "barth")
    assert status == 200, body
    assert [r["user_id"] for r in body["results"]] == [bob.user_id], body
    assert body["results"][0]["display_name"] == "Bartholomew Quux"
    assert body["limited"] is False


async def test_a_stranger_in_no_shared_or_public_room_is_not_found(
    api: Api, alice: Registered, carol: Registered
) -> None:
    await _name(api, carol, "Zebulon Hidden")
    status, body = await _search(api, alice, "zebulon")
    assert (status, body["results"]) == (200, []), body


async def test_search_needs_a_search_term_and_a_token(api: Api, alice: Registered) -> None:
    status, body = await api.request(
        "POST", "/user_directory/search", json={"limit": 5}, token=alice.access_token
    )
    assert_error(status, body, 400, "M_BAD_JSON")
    status, body = await api.request("POST", "/user_directory/search", json={"search_term": "a"})
    assert_error(status, body, 401, "M_MISSING_TOKEN")


async def test_capabilities_say_what_the_server_does(api: Api, alice: Registered) -> None:
    status, body = await api.request("GET", "/capabilities", token=alice.access_token)
    assert status == 200, body
    capabilities = body["capabilities"]
    assert capabilities["m.change_password"]["enabled"] is True
    assert capabilities["m.set_displayname"]["enabled"] is True
    assert capabilities["m.set_avatar_url"]["enabled"] is True
    assert capabilities["m.3pid_changes"]["enabled"] is True
    versions = capabilities["m.room_versions"]
    assert versions["default"] in versions["available"], versions
