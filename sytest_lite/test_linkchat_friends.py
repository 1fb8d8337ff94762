"""LinkChat: friends and blocks (/_linkchat/v1/friends, /_linkchat/v1/blocks; spec/friends.md)."""

from __future__ import annotations

from typing import Any

from sytest_lite.client import Api, Registered, assert_error, q

V1 = "/_linkchat/v1"


async def _request(api: Api, sender: Registered, target: str, **body: Any) -> tuple[int, Any]:
    return await api.request(
        "POST",
        V1 + "/friends/requests",
        json={"user_id": target, **body},
        token=sender.access_token,
    )


async def _accept(api: Api, user: Registered, requester: Registered) -> tuple[int, Any]:
    return await api.request(
        "POST",
        f"{V1}/friends/requests/{q(requester.user_id)}/accept",
        json={},
        token=user.access_token,
    )


async def _get(api: Api, user: Registered, path: str) -> Any:
    status, body = await api.request("GET", V1 + path, token=user.access_token)
    assert status == 200, (path, status, body)
    return body


async def _account_data(api: Api, user: Registered, data_type: str) -> Any:
    status, body = await api.request(
        "GET", "/sync", params={"timeout": "0"}, token=user.access_token
    )
    assert status == 200, (status, body)
    for event in body["account_data"]["events"]:
        if event["type"] == data_type:
            return event["content"]
    return None


async def test_request_then_accept_makes_friends_with_a_direct_chat(
    api: Api, alice: Registered, bob: Registered
) -> None:
    assert await _request(api, alice, bob.user_id, message="hi") == (200, {"status": "pending"})
    requests = await _get(api, bob, "/friends/requests")
    assert [(r["user_id"], r["message"]) for r in requests["incoming"]] == [(alice.user_id, "hi")]
    status, accepted = await _accept(api, bob, alice)
    assert status == 200, accepted
    room_id = accepted["room_id"]
    friends = await _get(api, alice, "/friends")
    assert friends["friends"] == [
        {"user_id": bob.user_id, "since": accepted["since"], "room_id": room_id}
    ]
    member = await api.state_content(bob.access_token, room_id, "m.room.member", alice.user_id)
    assert member["membership"] == "invite" and member["is_direct"] is True
    assert await _account_data(api, alice, "m.direct") == {bob.user_id: [room_id]}
    assert await _account_data(api, bob, "m.direct") == {alice.user_id: [room_id]}
    data = await _account_data(api, alice, "com.linkchat.friends")
    assert data["friends"] == {bob.user_id: {"since": accepted["since"], "room_id": room_id}}


async def test_friend_request_refusals(api: Api, alice: Registered, bob: Registered) -> None:
    status, body = await _request(api, alice, alice.user_id)
    assert_error(status, body, 400, "COM.LINKCHAT_SELF_REQUEST")
    status, body = await _request(api, alice, "@no_such_user_here:localhost")
    assert_error(status, body, 404, "M_NOT_FOUND")
    assert (await _request(api, alice, bob.user_id))[0] == 200
    status, body = await _request(api, alice, bob.user_id)
    assert_error(status, body, 400, "COM.LINKCHAT_DUPLICATE_REQUEST")
    status, body = await _accept(api, alice, bob)
    assert_error(status, body, 404, "COM.LINKCHAT_NO_REQUEST")
    assert (await _accept(api, bob, alice))[0] == 200
    status, body = await _request(api, bob, alice.user_id)
    assert_error(status, body, 400, "COM.LINKCHAT_ALREADY_FRIENDS")
    status, body = await api.request(
        "DELETE", f"{V1}/friends/{q(alice.user_id)}", token=bob.access_token
    )
    assert status == 200, body
    status, body = await api.request(
        "DELETE", f"{V1}/friends/{q(alice.user_id)}", token=bob.access_token
    )
    assert_error(status, body, 404, "COM.LINKCHAT_NOT_FRIENDS")


async def test_asking_back_accepts(api: Api, alice: Registered, bob: Registered) -> None:
    assert (await _request(api, bob, alice.user_id))[0] == 200
    status, body = await _request(api, alice, bob.user_id)
    assert status == 200 and body["status"] == "friends", body


async def test_a_blocked_user_is_refused_without_being_told(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(bob.access_token)
    status, body = await api.request(
        "PUT", f"{V1}/blocks/{q(bob.user_id)}", json={}, token=alice.access_token
    )
    assert status == 200, body
    assert [b["user_id"] for b in (await _get(api, alice, "/blocks"))["blocks"]] == [bob.user_id]
    ignored = await _account_data(api, alice, "m.ignored_user_list")
    assert ignored == {"ignored_users": {bob.user_id: {}}}
    refusals = [
        await _request(api, bob, alice.user_id),
        await api.membership_action(bob.access_token, room_id, "invite", alice.user_id),
        await api.request(
            "POST",
            "/createRoom",
            json={"is_direct": True, "preset": "trusted_private_chat", "invite": [alice.user_id]},
            token=bob.access_token,
        ),
    ]
    for status, body in refusals:
        assert_error(status, body, 403, "M_FORBIDDEN")
        assert "block" not in body["error"].lower(), body
    assert (await _get(api, bob, "/blocks"))["blocks"] == []
    status, body = await api.request(
        "DELETE", f"{V1}/blocks/{q(bob.user_id)}", token=alice.access_token
    )
    assert status == 200, body
    assert (await _request(api, bob, alice.user_id))[0] == 200


async def test_block_refusals(api: Api, alice: Registered, bob: Registered) -> None:
    status, body = await api.request(
        "PUT", f"{V1}/blocks/{q(alice.user_id)}", json={}, token=alice.access_token
    )
    assert_error(status, body, 400, "COM.LINKCHAT_SELF_BLOCK")
    status, body = await api.request(
        "DELETE", f"{V1}/blocks/{q(bob.user_id)}", token=alice.access_token
    )
    assert_error(status, body, 404, "COM.LINKCHAT_NOT_BLOCKED")
    status, body = await api.request("GET", V1 + "/blocks")
    assert_error(status, body, 401, "M_MISSING_TOKEN")
