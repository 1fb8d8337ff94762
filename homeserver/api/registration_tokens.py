"""Registration tokens: the admin API (Synapse's registration_tokens.md) and the spec's
validity check (GET /_matrix/client/v1/register/m.login.registration_token/validity)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field, StrictInt, StrictStr

from homeserver.admin.registration_tokens import RegistrationTokens, TokenRow
from homeserver.api.admin_requests import AdminBody, admin_reason, admin_requester, bool_param
from homeserver.api.app_keys import RATE_LIMITER
from homeserver.api.paths import SYNAPSE_ADMIN
from homeserver.api.requests import client_address, parse_body
from homeserver.api.responses import ok
from homeserver.errors import forbidden, missing_param
from homeserver.ratelimit.limiter import Action

REGISTRATION_TOKENS = web.AppKey("registration_tokens", RegistrationTokens)
# Whether registration needs a token (registration.require_token).
TOKENS_REQUIRED = web.AppKey("registration_tokens_required", bool)

routes = web.RouteTableDef()
TOKENS = SYNAPSE_ADMIN + "/v1/registration_tokens"


class UpdateTokenBody(AdminBody):
    uses_allowed: StrictInt | None = Field(default=None, ge=0, le=2**31 - 1)
    expiry_time: StrictInt | None = Field(default=None, ge=0, le=2**53 - 1)


class NewTokenBody(UpdateTokenBody):
    token: StrictStr | None = None
    length: StrictInt = 16


def _token(row: TokenRow) -> dict[str, Any]:
    return {
        "token": row.token,
        "uses_allowed": row.uses_allowed,
        "pending": row.pending,
        "completed": row.completed,
        "expiry_time": row.expiry_time,
    }


# GET /_synapse/admin/v1/registration_tokens
@routes.get(TOKENS)
async def list_registration_tokens(request: web.Request) -> web.Response:
    await admin_requester(request)
    rows = await request.app[REGISTRATION_TOKENS].tokens(bool_param(request, "valid", None))
    return ok({"registration_tokens": [_token(row) for row in rows]})


# POST /_synapse/admin/v1/registration_tokens/new
@routes.post(TOKENS + "/new")
async def create_registration_token(request: web.Request) -> web.Response:
    caller = await admin_requester(request)
    body = await parse_body(request, NewTokenBody, empty_ok=True)
    row = await request.app[REGISTRATION_TOKENS].create(
        caller.user_id, body.token, body.length, body.uses_allowed, body.expiry_time, body.reason
    )
    return ok(_token(row))


# GET /_synapse/admin/v1/registration_tokens/{token}
@routes.get(TOKENS + "/{token}")
async def get_registration_token(request: web.Request) -> web.Response:
    await admin_requester(request)
    return ok(_token(await request.app[REGISTRATION_TOKENS].token(request.match_info["token"])))


# PUT /_synapse/admin/v1/registration_tokens/{token}
@routes.put(TOKENS + "/{token}")
async def update_registration_token(request: web.Request) -> web.Response:
    caller = await admin_requester(request)
    body = await parse_body(request, UpdateTokenBody, empty_ok=True)
    # A field left out is left as it is; null means unlimited, or never expiring.
    changes = body.model_dump(include={"uses_allowed", "expiry_time"}, exclude_unset=True)
    row = await request.app[REGISTRATION_TOKENS].update(
        caller.user_id, request.match_info["token"], changes, body.reason
    )
    return ok(_token(row))


# DELETE /_synapse/admin/v1/registration_tokens/{token}
@routes.delete(TOKENS + "/{token}")
async def delete_registration_token(request: web.Request) -> web.Response:
    caller = await admin_requester(request)
    reason = await admin_reason(request)
    await request.app[REGISTRATION_TOKENS].delete(
        caller.user_id, request.match_info["token"], reason
    )
    return ok({})


# GET /_matrix/client/v1/register/m.login.registration_token/validity
@routes.get("/_matrix/client/v1/register/m.login.registration_token/validity")
async def registration_token_validity(request: web.Request) -> web.Response:
    if not request.app[TOKENS_REQUIRED]:
        raise forbidden("Registration tokens are not in use on this server.")
    token = request.query.get("token")
    if token is None:
        raise missing_param("Missing query parameter 'token'.")
    # As a registration per address: guessing tokens here is as slow as registering.
    await request.app[RATE_LIMITER].limit(
        Action.REGISTRATION, "token-validity:" + client_address(request)
    )
    return ok({"valid": await request.app[REGISTRATION_TOKENS].is_valid(token)})
