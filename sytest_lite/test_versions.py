"""Spec: "API Standards" (errors, M_UNRECOGNIZED), GET /_matrix/client/versions,
"Web Browser Clients" (CORS)."""

from __future__ import annotations

import re

import pytest

from sytest_lite.client import Api, assert_error


async def test_versions_lists_v1_versions_without_authentication(api: Api) -> None:
    status, body = await api.request("GET", "/_matrix/client/versions")
    assert status == 200, body
    versions = body["versions"]
    assert isinstance(versions, list) and versions, body
    assert all(isinstance(v, str) for v in versions), body
    assert any(re.fullmatch(r"v1\.\d+", v) for v in versions), versions


async def test_versions_unstable_features_is_a_map_of_booleans_if_present(api: Api) -> None:
    _, body = await api.request("GET", "/_matrix/client/versions")
    features = body.get("unstable_features", {})
    assert isinstance(features, dict), body
    assert all(isinstance(v, bool) for v in features.values()), features


@pytest.mark.parametrize(
    "path",
    [
        "/_matrix/client/v3/this_endpoint_does_not_exist",
        "/_matrix/client/v3/rooms/!r:localhost/no_such_thing",
        "/_matrix/client/v99/versions",
    ],
)
async def test_unknown_endpoint_is_404_unrecognized(api: Api, path: str) -> None:
    status, body = await api.request("GET", path)
    assert_error(status, body, 404, "M_UNRECOGNIZED")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/_matrix/client/versions"),
        ("PUT", "/_matrix/client/v3/login"),
        ("POST", "/_matrix/client/v3/account/whoami"),
    ],
)
async def test_known_endpoint_with_wrong_method_is_405_unrecognized(
    api: Api, method: str, path: str
) -> None:
    status, body = await api.request(method, path, json={})
    assert_error(status, body, 405, "M_UNRECOGNIZED")


def _header_items(value: str | None) -> set[str]:
    return {part.strip().lower() for part in (value or "").split(",") if part.strip()}


@pytest.mark.parametrize(
    "path",
    [
        "/_matrix/client/versions",
        "/_matrix/client/v3/login",
        # Authenticated endpoints: the preflight carries no token and must not be refused.
        "/_matrix/client/v3/account/whoami",
        "/_matrix/client/v3/rooms/!room:localhost/send/m.room.message/txn1",
    ],
)
async def test_options_preflight_is_answered_with_cors_headers(api: Api, path: str) -> None:
    resp = await api.request_full(
        "OPTIONS",
        path,
        headers={
            "Origin": "https://app.linkchat.example",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )
    assert resp.status in (200, 204), (resp.status, resp.body)
    assert resp.headers.get("Access-Control-Allow-Origin") == "*", dict(resp.headers)
    methods = _header_items(resp.headers.get("Access-Control-Allow-Methods"))
    assert {"get", "post", "put", "delete", "options"} <= methods, dict(resp.headers)
    allowed_headers = _header_items(resp.headers.get("Access-Control-Allow-Headers"))
    assert {"authorization", "content-type"} <= allowed_headers, dict(resp.headers)


async def test_ordinary_responses_carry_cors_allow_origin(api: Api) -> None:
    # The spec recommends the CORS headers on all requests; a browser client
    # cannot read a response without Access-Control-Allow-Origin.
    ok = await api.request_full("GET", "/_matrix/client/versions")
    assert ok.headers.get("Access-Control-Allow-Origin") == "*", dict(ok.headers)
    err = await api.request_full("GET", "/_matrix/client/v3/account/whoami")
    assert err.status == 401
    assert err.headers.get("Access-Control-Allow-Origin") == "*", dict(err.headers)


async def test_errors_are_json_objects_with_errcode(api: Api) -> None:
    resp = await api.request_full("GET", "/_matrix/client/v3/this_endpoint_does_not_exist")
    assert resp.headers.get("Content-Type", "").startswith("application/json"), dict(resp.headers)
    assert isinstance(resp.body, dict) and isinstance(resp.body.get("errcode"), str), resp.body
