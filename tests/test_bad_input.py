"""Bad requests get the spec's errcode and status, never a 500; CORS works everywhere."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.matrix import V3, MatrixClient, Reply, User

MAX_REQUEST_BYTES = 1024 * 1024
MAX_EVENT_BYTES = 65536


async def _room(hs: MatrixClient) -> tuple[User, str]:
    user = await hs.register()
    return user, await hs.create_room(user)


def _txn() -> str:
    return secrets.token_hex(8)


def _assert_error(reply: Reply, status: int, errcode: str) -> None:
    assert reply.status == status, reply
    assert reply.errcode == errcode, reply
    assert isinstance(reply.body.get("error"), str)


# --- bodies that are not the JSON object expected ------------------------------------


async def test_body_that_is_not_json_is_refused_as_not_json(hs: MatrixClient) -> None:
    user = await hs.register()
    for raw in [b"this is not json", b"{'single': 'quotes'}", b'{"open": ', b"\xff\xfe\x00"]:
        _assert_error(await hs.request("POST", "login", raw=raw), 400, "M_NOT_JSON")
        _assert_error(await hs.request("POST", "createRoom", raw=raw, user=user), 400, "M_NOT_JSON")


async def test_empty_body_where_an_object_is_required_is_not_json(hs: MatrixClient) -> None:
    user, room = await _room(hs)
    _assert_error(await hs.request("POST", "createRoom", raw=b"", user=user), 400, "M_NOT_JSON")
    reply = await hs.request(
        "PUT", f"rooms/{room}/send/m.room.message/{_txn()}", raw=b" ", user=user
    )
    _assert_error(reply, 400, "M_NOT_JSON")


async def test_nan_and_infinity_are_not_json(hs: MatrixClient) -> None:
    user, room = await _room(hs)
    for constant in [b"NaN", b"Infinity", b"-Infinity"]:
        raw = b'{"msgtype": "m.text", "body": "x", "n": ' + constant + b"}"
        reply = await hs.request(
            "PUT", f"rooms/{room}/send/m.room.message/{_txn()}", raw=raw, user=user
        )
        _assert_error(reply, 400, "M_NOT_JSON")


async def test_json_that_is_not_an_object_is_bad_json(hs: MatrixClient) -> None:
    user, room = await _room(hs)
    for raw in [b"[]", b'"a string"', b"42", b"null", b"true"]:
        _assert_error(await hs.request("POST", "createRoom", raw=raw, user=user), 400, "M_BAD_JSON")
        reply = await hs.request(
            "PUT", f"rooms/{room}/send/m.room.message/{_txn()}", raw=raw, user=user
        )
        _assert_error(reply, 400, "M_BAD_JSON")


async def test_wrong_field_type_is_bad_json_naming_the_field(hs: MatrixClient) -> None:
    user = await hs.register()
    reply = await hs.request("POST", "createRoom", {"invite": "@someone:localhost"}, user=user)
    _assert_error(reply, 400, "M_BAD_JSON")
    assert "invite" in reply.body["error"]

    reply = await hs.request("POST", "login", {"type": "m.login.password", "password": 12})
    _assert_error(reply, 400, "M_BAD_JSON")
    assert "password" in reply.body["error"]


async def test_float_in_event_content_is_bad_json(hs: MatrixClient) -> None:
    user, room = await _room(hs)
    content = {"msgtype": "m.text", "body": "x", "rating": 4.5}
    reply = await hs.request(
        "PUT", f"rooms/{room}/send/m.room.message/{_txn()}", content, user=user
    )
    _assert_error(reply, 400, "M_BAD_JSON")
    assert "rating" in reply.body["error"]


async def test_integer_beyond_canonical_json_range_is_bad_json(hs: MatrixClient) -> None:
    user, room = await _room(hs)
    content = {"msgtype": "m.text", "body": "x", "big": 2**53}
    reply = await hs.request(
        "PUT", f"rooms/{room}/send/m.room.message/{_txn()}", content, user=user
    )
    _assert_error(reply, 400, "M_BAD_JSON")


async def test_strings_postgres_cannot_store_are_bad_json(hs: MatrixClient) -> None:
    user, room = await _room(hs)
    for text in [r"a\u0000b", r"a\ud800b"]:
        raw = ('{"msgtype": "m.text", "body": "' + text + '"}').encode()
        reply = await hs.request(
            "PUT", f"rooms/{room}/send/m.room.message/{_txn()}", raw=raw, user=user
        )
        _assert_error(reply, 400, "M_BAD_JSON")
        raw = ('{"type": "m.login.password", "user": "' + text + '", "password": "x"}').encode()
        _assert_error(await hs.request("POST", "login", raw=raw), 400, "M_BAD_JSON")
        raw = ('{"display_name": "' + text + '"}').encode()
        reply = await hs.request("PUT", f"devices/{user.device_id}", raw=raw, user=user)
        _assert_error(reply, 400, "M_BAD_JSON")
    # The room still works afterwards.
    await hs.send(user, room)


async def test_absurdly_nested_json_is_bad_json(hs: MatrixClient) -> None:
    user, room = await _room(hs)
    for depth in [200, 5000]:
        raw = b'{"a":' * depth + b"1" + b"}" * depth
        reply = await hs.request(
            "PUT", f"rooms/{room}/send/m.room.message/{_txn()}", raw=raw, user=user
        )
        _assert_error(reply, 400, "M_BAD_JSON")
    _assert_error(await hs.request("POST", "login", raw=b"[" * 100_000), 400, "M_BAD_JSON")


async def test_event_larger_than_64_kib_is_too_large(hs: MatrixClient) -> None:
    user, room = await _room(hs)
    content = {"msgtype": "m.text", "body": "x" * MAX_EVENT_BYTES}
    reply = await hs.request(
        "PUT", f"rooms/{room}/send/m.room.message/{_txn()}", content, user=user
    )
    _assert_error(reply, 413, "M_TOO_LARGE")
    # Just under the limit (leaving room for the event's envelope) is fine.
    await hs.send(user, room, {"msgtype": "m.text", "body": "x" * (MAX_EVENT_BYTES - 2048)})


async def test_request_body_over_the_limit_is_too_large(hs: MatrixClient) -> None:
    user, room = await _room(hs)
    content = {"msgtype": "m.text", "body": "x" * (MAX_REQUEST_BYTES + 1)}
    reply = await hs.request(
        "PUT", f"rooms/{room}/send/m.room.message/{_txn()}", content, user=user
    )
    _assert_error(reply, 413, "M_TOO_LARGE")
    reply = await hs.request("POST", "login", raw=b" " * (MAX_REQUEST_BYTES + 1))
    _assert_error(reply, 413, "M_TOO_LARGE")


# --- routing --------------------------------------------------------------------------


async def test_unknown_path_is_unrecognized(hs: MatrixClient) -> None:
    for path in [V3 + "no_such_endpoint", "/_matrix/client/v9/login", "/nothing/here"]:
        _assert_error(await hs.request("GET", path), 404, "M_UNRECOGNIZED")


async def test_wrong_method_is_unrecognized_with_405(hs: MatrixClient) -> None:
    user = await hs.register()
    _assert_error(await hs.request("GET", "createRoom", user=user), 405, "M_UNRECOGNIZED")
    _assert_error(await hs.request("DELETE", "login"), 405, "M_UNRECOGNIZED")


# --- access tokens --------------------------------------------------------------------


async def test_missing_token_is_refused(hs: MatrixClient) -> None:
    _assert_error(await hs.request("GET", "account/whoami"), 401, "M_MISSING_TOKEN")
    _assert_error(await hs.request("POST", "createRoom", {}), 401, "M_MISSING_TOKEN")


async def test_unknown_token_is_refused(hs: MatrixClient) -> None:
    reply = await hs.request("GET", "account/whoami", token="lc_not_a_real_token")
    _assert_error(reply, 401, "M_UNKNOWN_TOKEN")
    reply = await hs.request("GET", "account/whoami?access_token=lc_not_a_real_token")
    _assert_error(reply, 401, "M_UNKNOWN_TOKEN")


async def test_token_in_query_parameter_is_accepted(hs: MatrixClient) -> None:
    user = await hs.register()
    body = await hs.ok("GET", f"account/whoami?access_token={user.token}")
    assert body["user_id"] == user.user_id


# --- CORS -----------------------------------------------------------------------------


def _assert_cors(headers: Any) -> None:
    assert headers["Access-Control-Allow-Origin"] == "*"
    methods = {m.strip() for m in headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST", "PUT", "DELETE", "OPTIONS"} <= methods
    allowed = {h.strip().lower() for h in headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed


async def test_preflight_succeeds_on_any_path(hs: MatrixClient) -> None:
    preflight = {
        "Origin": "https://app.example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    for path in [V3 + "createRoom", V3 + "rooms/!x:localhost/send/m.room.message/1", "/nope"]:
        async with hs.http.options(path, headers=preflight) as response:
            assert response.status == 200, path
            _assert_cors(response.headers)


async def test_cors_headers_on_normal_and_error_responses(hs: MatrixClient) -> None:
    origin = {"Origin": "https://app.example.com"}
    for method, path, status in [
        ("GET", "/_matrix/client/versions", 200),
        ("GET", V3 + "account/whoami", 401),
        ("GET", "/no/such/path", 404),
        ("POST", V3 + "login", 400),
    ]:
        async with hs.http.request(method, path, headers=origin, data=b"x") as response:
            assert response.status == status, path
            _assert_cors(response.headers)


async def test_nul_in_a_path_parameter_is_a_client_error(hs: MatrixClient) -> None:
    user, room = await _room(hs)
    replies = [
        await hs.request("PUT", f"rooms/{room}/send/m.room%00message/{_txn()}", {}, user=user),
        await hs.request(
            "PUT", f"rooms/{room}/state/m.room.topic/a%00b", {"topic": "x"}, user=user
        ),
        await hs.request("GET", "rooms/!a%00b:localhost/state", user=user),
    ]
    assert [r.status for r in replies] == [400, 400, 400], replies


# --- query parameters -----------------------------------------------------------------


def _nested_filter(depth: int) -> str:
    """An inline filter (an object, as /sync wants) holding lists nested `depth` deep,
    percent-encoded: lists, as `[` is the shortest opener to encode in a URL."""
    return quote('{"a":' + "[" * depth + "]" * depth + "}", safe="")


async def test_nul_as_sync_filter_is_an_invalid_parameter(hs: MatrixClient) -> None:
    # Neither JSON nor a filter ID this server could have made: Synapse answers an
    # unknown filter ID with 400 M_INVALID_PARAM.
    user = await hs.register()
    for value in ["%00", "a%00b"]:
        _assert_error(
            await hs.request("GET", f"sync?filter={value}", user=user), 400, "M_INVALID_PARAM"
        )


async def test_nul_in_any_query_parameter_is_an_invalid_parameter(hs: MatrixClient) -> None:
    user, room = await _room(hs)
    event_id = await hs.send(user, room)
    search = {"search_categories": {"room_events": {"search_term": "x"}}}
    for path in [
        f"rooms/{room}/messages?dir=b&from=a%00b",
        f"rooms/{room}/messages?dir=b&to=a%00b",
        f"rooms/{room}/messages?dir=%00",
        f"rooms/{room}/members?at=a%00b",
        f"rooms/{room}/members?membership=a%00b",
        f"rooms/{room}/context/{event_id}?filter=a%00b",
        "sync?since=a%00b",
        "publicRooms?since=a%00b",
        "publicRooms?server=a%00b",
        "register/available?username=a%00b",
        "account/whoami?access_token=a%00b",
        "search?next_batch=a%00b",
        "sync?a%00b=1",
    ]:
        if path.startswith("search"):
            reply = await hs.request("POST", path, search, user=user)
        else:
            reply = await hs.request("GET", path, user=user)
        _assert_error(reply, 400, "M_INVALID_PARAM")


async def test_inline_filter_nested_too_deep_is_bad_json(hs: MatrixClient) -> None:
    user, room = await _room(hs)
    event_id = await hs.send(user, room)
    # 200: deeper than request bodies may nest; 1100: deeper than Python's recursion limit.
    for depth in [200, 1100]:
        nested = _nested_filter(depth)
        for path in [
            f"sync?filter={nested}",
            f"rooms/{room}/messages?dir=b&filter={nested}",
            f"rooms/{room}/context/{event_id}?filter={nested}",
        ]:
            _assert_error(await hs.request("GET", path, user=user), 400, "M_BAD_JSON")


async def test_inline_filter_with_a_nul_string_is_bad_json(hs: MatrixClient) -> None:
    user, room = await _room(hs)
    nul = quote('{"room": {"rooms": ["!a\\u0000b:localhost"]}}', safe="")
    _assert_error(await hs.request("GET", f"sync?filter={nul}", user=user), 400, "M_BAD_JSON")
    nul = quote('{"senders": ["@a\\u0000b:localhost"]}', safe="")
    reply = await hs.request("GET", f"rooms/{room}/messages?dir=b&filter={nul}", user=user)
    _assert_error(reply, 400, "M_BAD_JSON")


async def test_token_with_numbers_past_bigint_is_an_invalid_parameter(hs: MatrixClient) -> None:
    user, room = await _room(hs)
    event_id = await hs.send(user, room)
    huge = "9" * 25
    for path in [
        f"sync?since=s1_0_{huge}_0",
        f"sync?since=s{huge}_0_0_0",
        f"rooms/{room}/messages?dir=b&from=t{huge}",
        f"rooms/{room}/messages?dir=b&from=s{huge}_0_0",
        f"rooms/{room}/messages?dir=f&from=t1&to=t{huge}",
        f"rooms/{room}/members?at=t{huge}",
        f"v1/rooms/{room}/relations/{event_id}?from=t{huge}",
    ]:
        path = "/_matrix/client/" + path if path.startswith("v1/") else path
        _assert_error(await hs.request("GET", path, user=user), 400, "M_INVALID_PARAM")


def _paging_token(text: str) -> str:
    """A token shaped as /search's and /publicRooms' are: URL-safe base64 of JSON."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


async def test_paging_token_hiding_deep_json_or_nul_is_an_invalid_parameter(
    hs: MatrixClient,
) -> None:
    user = await hs.register()
    search = {"search_categories": {"room_events": {"search_term": "x"}}}
    deep = _paging_token("[" * 1200)
    for token in [deep, _paging_token('{"d": "f", "j": 1, "r": "!a\\u0000b:localhost"}')]:
        reply = await hs.request("GET", f"publicRooms?since={token}", user=user)
        _assert_error(reply, 400, "M_INVALID_PARAM")
    nul = '{"o": "recent", "u": 1, "p": 1, "g": ["room_id", "!a\\u0000b:localhost"]}'
    for token in [deep, _paging_token(nul)]:
        reply = await hs.request("POST", f"search?next_batch={token}", search, user=user)
        _assert_error(reply, 400, "M_INVALID_PARAM")


async def test_one_bad_request_does_not_fail_other_users_messages(hs: MatrixClient) -> None:
    user, room = await _room(hs)
    good = [
        hs.request("PUT", f"rooms/{room}/send/m.room.message/{_txn()}", {"body": "x"}, user=user)
        for _ in range(20)
    ]
    bad = [
        hs.request("PUT", f"rooms/{room}/send/m.room%00message/{_txn()}", {}, user=user)
        for _ in range(3)
    ]
    replies = await asyncio.gather(*good, *bad)
    assert [r.status for r in replies[:20]] == [200] * 20


# --- fuzzing --------------------------------------------------------------------------

# Strings that have broken servers: NUL (PostgreSQL text refuses it), lone
# surrogates (no UTF-8 form), and values the endpoints give meaning to.
nasty_strings = st.sampled_from(
    [
        "",
        "\x00",
        "a\x00b",
        "\ud800",
        "x\udfff",
        "@a:localhost",
        "!r:localhost",
        "m.login.password",
        "m.login.dummy",
        "m.id.user",
        "\uff21\uff22\uff23",
        "a" * 300,
    ]
)
strings = st.text(max_size=20) | nasty_strings
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | strings,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(strings, children, max_size=4)
    ),
    max_leaves=12,
)
# Each endpoint with a body it would accept; the fuzzer swaps some of its values
# for arbitrary ones, so the request gets past the first check into the service.
PLAUSIBLE: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "login"): {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "someone"},
        "password": "pw",
        "device_id": "DEV",
    },
    ("POST", "register"): {
        "username": "fuzzed",
        "password": "pw",
        "device_id": "DEV",
        "auth": {"type": "m.login.dummy"},
    },
    ("POST", "createRoom"): {"name": "n", "topic": "t", "preset": "private_chat", "invite": []},
    ("PUT", "rooms/{room}/send/m.room.message/{txn}"): {"msgtype": "m.text", "body": "b"},
    ("PUT", "rooms/{room}/state/m.room.topic/"): {"topic": "t"},
    ("PUT", "devices/{device}"): {"display_name": "d"},
    ("POST", "account/password"): {"new_password": "pw2", "logout_devices": False},
    ("POST", "delete_devices"): {"devices": ["NONE"], "auth": {"type": "m.login.password"}},
}
endpoints = st.sampled_from(sorted(PLAUSIBLE))


@st.composite
def bodies(draw: st.DrawFn, endpoint: tuple[str, str]) -> bytes:
    kind = draw(st.sampled_from(["mutated", "mutated", "json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    body = dict(PLAUSIBLE[endpoint])
    keys = st.sampled_from(sorted(body)) | strings
    body.update(draw(st.dictionaries(keys, json_values, min_size=1, max_size=3)))
    return json.dumps(body).encode()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_random_bodies_never_cause_a_server_error(
    hs: MatrixClient, data: st.DataObject
) -> None:
    endpoint = data.draw(endpoints)
    body = data.draw(bodies(endpoint))
    user = await hs.register()
    room = await hs.create_room(user)
    method, template = endpoint
    path = template.format(room=room, txn=_txn(), device=user.device_id)
    reply = await hs.request(method, path, raw=body, user=user)
    assert reply.status < 500, (method, path, body, reply)
    # The one error without an errcode is the first UIA challenge, which lists flows.
    uia_challenge = reply.status == 401 and "flows" in reply.body
    if reply.status >= 400 and not uia_challenge:
        assert isinstance(reply.errcode, str) and reply.errcode.startswith("M_"), reply


# --- every route ----------------------------------------------------------------------

# Bodies no route accepts as they are: not JSON, JSON but not an object, and
# objects whose fields (named as the routes name theirs) all have wrong types.
WRONG_FIELDS = {
    name: 5
    for name in (
        "user_id body type displayname avatar_url presence reason new_password device_keys"
        " filter room_id action message role pushkey kind app_id data token password"
        " identifier email client_secret search_term since thread_id state_key name topic"
        " preset room_version room_alias_name visibility display_name user msgtype"
    ).split()
} | {
    name: "x"
    for name in (
        "content limit timeout rooms events messages search_categories typing score"
        " devices auth invite initial_state power_level_content_override creation_content"
        " is_direct logout_devices capabilities args ttl_ms level m.fully_read m.read"
    ).split()
}
ROUTE_BODIES = [b"", b"not json", b"[]", b"null", b'"s"', b"{}", json.dumps(WRONG_FIELDS).encode()]
WRONG_QUERY = (
    "?limit=x&from=zz&to=zz&dir=q&timeout=x&since=zz&filter=%7B&at=zz&membership=zz"
    "&not_membership=zz&allow_remote=maybe&width=x&height=x&method=zz&order_by=zz&next_batch=zz"
)
# Every query parameter a route reads, to be given U+0000, which PostgreSQL refuses.
QUERY_NAMES = (
    "limit from to dir timeout timeout_ms since filter at membership not_membership"
    " allow_remote width height method order_by next_batch kind username server format"
    " filename status full_state set_presence animated user event access_token"
).split()
# Tokens shaped as ours but with numbers past PostgreSQL's BIGINT, and an inline
# filter nested deeper than Python's recursion limit.
_HUGE = "9" * 25
OTHER_QUERIES = [
    f"?dir=b&from=t{_HUGE}&at=t{_HUGE}&since=s1_0_{_HUGE}_0",
    f"?dir=f&from=t1&to=s{_HUGE}_0_0",
    "?dir=b&filter=" + _nested_filter(1100),
]


def _routes(hs: MatrixClient) -> list[tuple[str, str]]:
    found = []
    for resource in hs.app.router.resources():
        info = resource.get_info()
        template = info.get("path") or info.get("formatter")
        found.extend(
            (route.method, str(template))
            for route in resource
            if template and route.method not in ("HEAD", "OPTIONS", "*")
        )
    return found


def _fill(template: str, known: dict[str, str], other: str) -> str:
    return re.sub(r"\{([^}:]+)[^}]*\}", lambda m: known.get(m.group(1), other), template)


# The sweep makes ~60 requests per route and grows with the API (about two minutes on a
# slow, loaded 2-core machine): more than the default timeout, which is for one behaviour.
@pytest.mark.timeout(600)
async def test_every_route_answers_bad_input_with_a_matrix_error(hs: MatrixClient) -> None:
    routes = _routes(hs)
    assert len(routes) > 100  # the sweep really covers the API
    failures = []
    for method, template in routes:
        # A fresh user for each route: the sweep logs out and changes passwords too.
        user = await hs.register()
        room = await hs.create_room(user)
        known = {
            "room_id": room,
            "room_id_or_alias": room,
            "user_id": user.user_id,
            "device_id": user.device_id,
        }
        # Well-formed values, then truncated UTF-8, then NUL, in every path parameter.
        paths = [
            _fill(template, known, "zz"),
            _fill(template, {}, "%E2%82"),
            _fill(template, {}, "a%00b"),
        ]
        # A route that long-polls by default (the legacy GET /events holds 30 s, as
        # Synapse's) is asked not to wait: its answer is the same, 30 s sooner.
        plain = "?timeout=0" if template.endswith("/events") and method == "GET" else ""
        for path in paths:
            for query in (plain, WRONG_QUERY):
                for body in ROUTE_BODIES if method in ("POST", "PUT", "DELETE") else [b""]:
                    for who in (user, None):
                        reply = await hs.request(method, path + query, raw=body, user=who)
                        if not _is_matrix_answer(reply):
                            failures.append((method, path + query, body, reply))
        # One bad query parameter at a time (with all at once, the first one a route
        # reads would hide the others), after a well-formed path and body.
        body = b"{}" if method in ("POST", "PUT", "DELETE") else b""
        for query in [f"?{name}=a%00b" for name in QUERY_NAMES] + OTHER_QUERIES:
            reply = await hs.request(method, paths[0] + query, raw=body, user=user)
            if not _is_matrix_answer(reply):
                failures.append((method, paths[0] + query, body, reply))
    assert failures == []


def _is_matrix_answer(reply: Reply) -> bool:
    """Not a server error, and an error with an errcode (bar the first UIA challenge, and
    the pages a person's browser opens from an email, which say what went wrong in HTML)."""
    challenge = reply.status == 401 and "flows" in (reply.body or {})
    page = reply.headers.get("Content-Type", "").startswith("text/html")
    return reply.status < 500 and (
        reply.status < 400 or challenge or page or reply.errcode is not None
    )
