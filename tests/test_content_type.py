"""Every JSON response says `Content-Type: application/json`, exactly: RFC 8259 defines
no `charset` parameter for it, and some clients compare the header literally."""

from __future__ import annotations

from typing import Any

from tests.matrix import MatrixClient, Reply

JSON = "application/json"


def _assert_exact_json(reply: Reply, status: int) -> None:
    assert reply.status == status, reply.body
    assert reply.headers["Content-Type"] == JSON
    assert isinstance(reply.body, dict)


async def test_successful_json_responses_have_the_exact_content_type(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice, name="headers")
    requests: list[tuple[str, str, Any]] = [
        ("GET", "/_matrix/client/versions", None),
        ("GET", "login", None),
        ("GET", "capabilities", None),
        ("GET", "account/whoami", None),
        ("GET", "sync?timeout=0", None),
        ("GET", f"rooms/{room}/state/m.room.name/", None),
        ("PUT", f"rooms/{room}/send/m.room.message/t1", {"msgtype": "m.text", "body": "hi"}),
        ("POST", "createRoom", {}),
        ("GET", "/_matrix/client/r0/joined_rooms", None),
        ("GET", "/_matrix/key/v2/server", None),
        ("GET", "/health", None),
    ]
    for method, path, body in requests:
        reply = await hs.request(method, path, body, user=alice)
        _assert_exact_json(reply, 200)


async def test_error_responses_have_the_exact_content_type(hs: MatrixClient) -> None:
    alice = await hs.register()
    unknown_endpoint = await hs.request("GET", "no/such/endpoint", user=alice)
    _assert_exact_json(unknown_endpoint, 404)
    assert unknown_endpoint.errcode == "M_UNRECOGNIZED"
    missing_token = await hs.request("GET", "account/whoami")
    _assert_exact_json(missing_token, 401)
    not_json = await hs.request("POST", "createRoom", raw=b"{not json", user=alice)
    _assert_exact_json(not_json, 400)
    assert not_json.errcode == "M_NOT_JSON"
    forbidden = await hs.request(
        "POST",
        "login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": alice.user_id},
            "password": "wrong",
        },
    )
    _assert_exact_json(forbidden, 403)
    wrong_method = await hs.request("DELETE", "/_matrix/client/versions")
    _assert_exact_json(wrong_method, 405)
