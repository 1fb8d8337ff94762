"""Spec: "Standard error response" (M_NOT_JSON, M_BAD_JSON, M_TOO_LARGE,
M_UNKNOWN_TOKEN) and "Size limits" (an event is at most 65536 bytes).
Whatever a client sends, the answer is a 4xx with an errcode, never a 500."""

from __future__ import annotations

import pytest

from sytest_lite.client import Api, Registered, assert_error, q

NOT_JSON_BODIES = [
    "this is not json",
    "{unquoted: 1}",
    '{"truncated": ',
    "\xff\xfe garbage",
]


@pytest.mark.parametrize("raw", NOT_JSON_BODIES)
async def test_non_json_body_is_not_json(api: Api, alice: Registered, raw: str) -> None:
    status, body = await api.request(
        "POST", "/createRoom", raw_body=raw.encode("latin-1"), token=alice.access_token
    )
    assert_error(status, body, 400, "M_NOT_JSON")


async def test_non_json_body_on_unauthenticated_endpoint_is_not_json(api: Api) -> None:
    status, body = await api.request("POST", "/login", raw_body=b"not json at all")
    assert_error(status, body, 400, "M_NOT_JSON")


async def test_non_json_body_on_send_is_not_json(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    status, body = await api.request(
        "PUT",
        f"/rooms/{q(room_id)}/send/m.room.message/t1",
        raw_body=b"<html>",
        token=alice.access_token,
    )
    assert_error(status, body, 400, "M_NOT_JSON")


@pytest.mark.parametrize("raw", ["[]", "[1, 2]", '"a string"', "42", "null"])
async def test_json_that_is_not_an_object_is_bad_json(
    api: Api, alice: Registered, raw: str
) -> None:
    room_id = await api.create_room(alice.access_token)
    status, body = await api.request(
        "PUT",
        f"/rooms/{q(room_id)}/send/m.room.message/t1",
        raw_body=raw,
        token=alice.access_token,
    )
    assert_error(status, body, 400, "M_BAD_JSON")


@pytest.mark.parametrize(
    "body",
    [
        {"invite": "not-a-list"},
        {"name": 5},
        {"preset": "no_such_preset"},
        {"initial_state": [{"content": {}}]},  # type is required
        {"power_level_content_override": "not an object"},
    ],
)
async def test_create_room_with_wrong_field_type_is_bad_json(
    api: Api, alice: Registered, body: dict[str, object]
) -> None:
    status, resp = await api.request("POST", "/createRoom", json=body, token=alice.access_token)
    assert_error(status, resp, 400, "M_BAD_JSON")


async def test_login_with_non_string_password_is_bad_json(api: Api, alice: Registered) -> None:
    status, body = await api.request(
        "POST",
        "/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": alice.user_id},
            "password": 12345,
        },
    )
    assert_error(status, body, 400, "M_BAD_JSON")


async def test_invite_without_user_id_is_bad_json(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    status, body = await api.request(
        "POST", f"/rooms/{q(room_id)}/invite", json={}, token=alice.access_token
    )
    assert_error(status, body, 400, "M_BAD_JSON")


async def test_float_in_event_content_is_bad_json(api: Api, alice: Registered) -> None:
    # Room versions 6+ use strict canonical JSON: integers only, within +-(2**53 - 1).
    room_id = await api.create_room(alice.access_token)
    for content in ({"value": 1.5}, {"value": 2**53}):
        status, body = await api.send(alice.access_token, room_id, "org.example.numbers", content)
        assert_error(status, body, 400, "M_BAD_JSON")


async def test_event_over_65536_bytes_is_too_large(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    status, body = await api.send(
        alice.access_token, room_id, "m.room.message", {"msgtype": "m.text", "body": "x" * 70_000}
    )
    assert_error(status, body, 413, "M_TOO_LARGE")


async def test_state_event_over_65536_bytes_is_too_large(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    status, body = await api.put_state(
        alice.access_token, room_id, "m.room.topic", {"topic": "y" * 70_000}
    )
    assert_error(status, body, 413, "M_TOO_LARGE")


async def test_event_just_under_the_limit_is_accepted(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    await api.send_text(alice.access_token, room_id, "z" * 60_000)


async def test_bad_token_is_unknown_token(api: Api) -> None:
    status, body = await api.request("GET", "/joined_rooms", token="definitely-not-a-token")
    assert_error(status, body, 401, "M_UNKNOWN_TOKEN")


async def test_malformed_authorization_header_is_rejected(api: Api) -> None:
    resp = await api.request_full(
        "GET", "/joined_rooms", headers={"Authorization": "Basic dXNlcjpwYXNz"}
    )
    assert resp.status == 401, (resp.status, resp.body)
    assert resp.body.get("errcode") in ("M_MISSING_TOKEN", "M_UNKNOWN_TOKEN"), resp.body


# Requests that a sloppy server turns into a 500: wrong shapes, odd identifiers,
# unknown rooms. Any 4xx with an errcode is acceptable here; the spec-exact
# answers are asserted elsewhere.
GARBAGE_REQUESTS: list[tuple[str, str, object]] = [
    ("POST", "/createRoom", {"invite": [1, 2, 3]}),
    ("POST", "/createRoom", {"initial_state": "nope"}),
    ("POST", "/createRoom", {"creation_content": []}),
    ("POST", "/createRoom", {"room_alias_name": "has spaces and #:!"}),
    ("POST", "/createRoom", {"invite": ["not-a-user-id"]}),
    ("POST", "/join/not-a-room-id", {}),
    ("POST", "/join/!unknownroom:localhost", {}),
    ("POST", "/rooms/!unknownroom:localhost/leave", {}),
    ("POST", "/rooms/!unknownroom:localhost/invite", {"user_id": "@x:localhost"}),
    ("POST", "/rooms/!unknownroom:localhost/kick", {"user_id": 7}),
    ("POST", "/rooms/!unknownroom:localhost/ban", {"user_id": ["list"]}),
    ("GET", "/rooms/!unknownroom:localhost/state", None),
    ("GET", "/rooms/!unknownroom:localhost/members", None),
    ("GET", "/rooms/!unknownroom:localhost/event/$nope", None),
    ("PUT", "/rooms/!unknownroom:localhost/send/m.room.message/t1", {"body": "x"}),
    ("PUT", "/rooms/!unknownroom:localhost/state/m.room.name/", {"name": "x"}),
    ("PUT", "/directory/room/%23alias:localhost", {"room_id": 12}),
    ("PUT", "/directory/room/%23alias:localhost", {"room_id": "!unknownroom:localhost"}),
    ("PUT", "/directory/room/not-an-alias", {"room_id": "!unknownroom:localhost"}),
    ("GET", "/directory/room/not-an-alias", None),
    ("PUT", "/devices/%00weird", {"display_name": 5}),
    ("POST", "/delete_devices", {"devices": "not-a-list"}),
    ("POST", "/account/password", {"new_password": None}),
    ("POST", "/register", {"username": 5, "password": []}),
    ("POST", "/register", {"auth": "not-an-object"}),
    ("POST", "/register", {"auth": {"type": "m.login.dummy", "session": "unknown-session"}}),
    ("POST", "/login", {"type": "m.login.password", "identifier": "nope"}),
    ("POST", "/login", {"type": "m.login.password", "identifier": {"type": "m.id.thirdparty"}}),
    ("POST", "/login", {}),
    ("GET", "/register/available", None),
    ("GET", "/rooms/%FF%FE/state", None),
    ("GET", "/devices/%C0%AF", None),
    ("PUT", "/rooms/!unknownroom:localhost/redact/$nope/t1", {"reason": 5}),
    ("GET", "/rooms/!unknownroom:localhost/joined_members", None),
    ("GET", "/rooms/!unknownroom:localhost/aliases", None),
    ("POST", "/rooms/!unknownroom:localhost/forget", {}),
]


@pytest.mark.parametrize(("method", "path", "body"), GARBAGE_REQUESTS)
async def test_garbage_is_a_client_error_never_a_500(
    api: Api, alice: Registered, method: str, path: str, body: object
) -> None:
    status, resp = await api.request(method, path, json=body, token=alice.access_token)
    assert 400 <= status < 500, (status, resp)
    assert isinstance(resp, dict), (status, resp)
    # A UIA challenge (401 with flows) is a fair answer before the body is judged.
    uia_challenge = status == 401 and "flows" in resp
    assert uia_challenge or isinstance(resp.get("errcode"), str), (status, resp)


async def test_request_body_over_the_size_limit_is_too_large(api: Api, alice: Registered) -> None:
    big = {"name": "n", "initial_state": [], "padding": "p" * (2 * 1024 * 1024)}
    status, body = await api.request("POST", "/createRoom", json=big, token=alice.access_token)
    assert_error(status, body, 413, "M_TOO_LARGE")


@pytest.mark.parametrize(
    ("event_type", "state_key"),
    [("t" * 300, ""), ("com.linkchat.test.state", "k" * 300)],
)
async def test_oversized_type_or_state_key_is_rejected(
    api: Api, alice: Registered, event_type: str, state_key: str
) -> None:
    # "Size limits": type and state_key are at most 255 bytes each.
    room_id = await api.create_room(alice.access_token)
    status, body = await api.put_state(
        alice.access_token, room_id, event_type, {"x": 1}, state_key=state_key
    )
    assert 400 <= status < 500, (status, body)
    assert isinstance(body.get("errcode"), str), body
