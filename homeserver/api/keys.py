"""End-to-end encryption keys: /keys/upload, query, claim, changes, device_signing/upload and
signatures/upload."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from homeserver.api.app_keys import RATE_LIMITER
from homeserver.api.paths import V3
from homeserver.api.requests import RequestBody, json_object, parse_body, requester
from homeserver.api.responses import ok
from homeserver.e2ee.device_lists import DeviceLists
from homeserver.e2ee.service import KeyService
from homeserver.errors import missing_param
from homeserver.ratelimit.limiter import Action

E2EE_KEYS = web.AppKey("e2ee_keys", KeyService)
DEVICE_LISTS = web.AppKey("device_lists", DeviceLists)

routes = web.RouteTableDef()


class QueryBody(RequestBody):
    device_keys: dict[str, list[str]]
    timeout: int | None = None


class ClaimBody(RequestBody):
    one_time_keys: dict[str, dict[str, str]]
    timeout: int | None = None


class CrossSigningBody(RequestBody):
    master_key: dict[str, Any] | None = None
    self_signing_key: dict[str, Any] | None = None
    user_signing_key: dict[str, Any] | None = None
    auth: dict[str, Any] | None = Field(None)


# POST /_matrix/client/v3/keys/upload
@routes.post(V3 + "/keys/upload")
async def upload_keys(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await json_object(request)
    return ok(await request.app[E2EE_KEYS].upload(caller, body))


# POST /_matrix/client/v3/keys/query
@routes.post(V3 + "/keys/query")
async def query_keys(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await parse_body(request, QueryBody)
    await request.app[RATE_LIMITER].limit_user(Action.KEY_QUERY, caller.user_id)
    return ok(await request.app[E2EE_KEYS].query(caller, body.device_keys))


# POST /_matrix/client/v3/keys/claim
@routes.post(V3 + "/keys/claim")
async def claim_keys(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await parse_body(request, ClaimBody)
    asked = sum(len(devices) for devices in body.one_time_keys.values())
    await request.app[RATE_LIMITER].limit_user(Action.KEY_CLAIM, caller.user_id, max(asked, 1))
    return ok(await request.app[E2EE_KEYS].claim(body.one_time_keys))


# GET /_matrix/client/v3/keys/changes
@routes.get(V3 + "/keys/changes")
async def key_changes(request: web.Request) -> web.Response:
    caller = await requester(request)
    from_token = request.query.get("from")
    if from_token is None:
        raise missing_param("The from parameter is required.")
    return ok(await request.app[E2EE_KEYS].changes(caller, from_token, request.query.get("to")))


# POST /_matrix/client/v3/keys/device_signing/upload
@routes.post(V3 + "/keys/device_signing/upload")
async def upload_cross_signing_keys(request: web.Request) -> web.Response:
    caller = await requester(request)
    raw = await json_object(request)
    body = CrossSigningBody.model_validate(raw)
    await request.app[E2EE_KEYS].upload_cross_signing_keys(caller, raw, body.auth)
    return ok()


# POST /_matrix/client/v3/keys/signatures/upload
@routes.post(V3 + "/keys/signatures/upload")
async def upload_signatures(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await json_object(request)
    return ok(await request.app[E2EE_KEYS].upload_signatures(caller, body))
