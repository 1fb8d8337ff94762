"""Registration, login, logout, whoami, password and devices."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field, StrictBool

from homeserver.accounts.service import Device, Session
from homeserver.api.app_keys import ACCOUNTS, DEACTIVATION, RATE_LIMITER, SERVER_NAME
from homeserver.api.paths import V3
from homeserver.api.requests import RequestBody, access_token, client_address, parse_body, requester
from homeserver.api.responses import ok
from homeserver.errors import MatrixError, missing_param
from homeserver.ratelimit.limiter import Action

routes = web.RouteTableDef()


class RegisterBody(RequestBody):
    username: str | None = None
    password: str | None = Field(None, max_length=512)
    device_id: str | None = Field(None, min_length=1, max_length=255)
    initial_device_display_name: str | None = Field(None, max_length=512)
    inhibit_login: bool = False
    auth: dict[str, Any] | None = None


class Identifier(RequestBody):
    type: str
    user: str | None = None
    medium: str | None = None
    address: str | None = Field(None, max_length=512)


class LoginBody(RequestBody):
    type: str
    identifier: Identifier | None = None
    user: str | None = None
    # The legacy spelling of an m.id.thirdparty identifier.
    medium: str | None = None
    address: str | None = Field(None, max_length=512)
    password: str | None = None
    token: str | None = Field(None, max_length=512)
    device_id: str | None = Field(None, min_length=1, max_length=255)
    initial_device_display_name: str | None = Field(None, max_length=512)


class PasswordBody(RequestBody):
    new_password: str | None = Field(None, max_length=512)
    logout_devices: bool = True
    auth: dict[str, Any] | None = None


class DeviceUpdateBody(RequestBody):
    display_name: str | None = Field(None, max_length=512)


class AuthOnlyBody(RequestBody):
    auth: dict[str, Any] | None = None


class DeactivateBody(RequestBody):
    erase: StrictBool = False
    id_server: str | None = None
    auth: dict[str, Any] | None = None


class DeleteDevicesBody(RequestBody):
    devices: list[str] | None = None
    auth: dict[str, Any] | None = None


def _provided(body: RequestBody) -> dict[str, Any]:
    """The parameters the client sent (not the defaults), for a UIA session to remember:
    a later request of the session may leave them out."""
    return body.model_dump(exclude_unset=True, exclude={"auth"})


def _device_json(row: Device) -> dict[str, Any]:
    # The spec marks every field but device_id optional: absent when unknown, never null.
    device: dict[str, Any] = {"device_id": row.device_id}
    if row.display_name is not None:
        device["display_name"] = row.display_name
    if row.last_seen_ts is not None:
        device["last_seen_ts"] = row.last_seen_ts
    return device


# POST /_matrix/client/v3/register
@routes.post(V3 + "/register")
async def register(request: web.Request) -> web.Response:
    kind = request.query.get("kind", "user")
    if kind == "guest":
        raise MatrixError(403, "M_GUEST_ACCESS_FORBIDDEN", "Guest access is not supported.")
    if kind != "user":
        raise MatrixError(400, "M_INVALID_PARAM", f"Unknown account kind {kind!r}.")
    body = await parse_body(request, RegisterBody)
    session = await request.app[ACCOUNTS].register(
        _provided(body), body.auth, client_address(request)
    )
    response: dict[str, Any] = {"user_id": session.user_id, "home_server": request.app[SERVER_NAME]}
    if session.access_token is not None:
        response.update(access_token=session.access_token, device_id=session.device_id)
    return ok(response)


# GET /_matrix/client/v3/register/available
@routes.get(V3 + "/register/available")
async def register_available(request: web.Request) -> web.Response:
    username = request.query.get("username")
    if not username:
        raise missing_param("The username parameter is required.")
    return ok({"available": await request.app[ACCOUNTS].username_available(username)})


# GET /_matrix/client/v3/login
@routes.get(V3 + "/login")
async def login_flows(request: web.Request) -> web.Response:
    return ok({"flows": [{"type": "m.login.password"}, {"type": "m.login.token"}]})


def _logged_in(request: web.Request, session: Session) -> web.Response:
    """What POST /login answers, whichever way the user logged in."""
    return ok(
        {
            "user_id": session.user_id,
            "access_token": session.access_token,
            "device_id": session.device_id,
            "home_server": request.app[SERVER_NAME],
        }
    )


# POST /_matrix/client/v3/login
@routes.post(V3 + "/login")
async def login(request: web.Request) -> web.Response:
    body = await parse_body(request, LoginBody)
    await request.app[RATE_LIMITER].limit(Action.LOGIN_ADDRESS, client_address(request))
    if body.type == "m.login.token":
        # A device agent's single-use login token (POST /_linkchat/v1/devices).
        if not body.token:
            raise missing_param("token is required.")
        session = await request.app[ACCOUNTS].login_with_token(
            body.token, body.device_id, body.initial_device_display_name
        )
        return _logged_in(request, session)
    if body.type != "m.login.password":
        raise MatrixError(400, "M_UNKNOWN", f"Unknown login type {body.type!r}.")
    user, medium, address = body.user, body.medium, body.address
    if body.identifier is not None:
        if body.identifier.type == "m.id.user":
            user, medium, address = body.identifier.user, None, None
        elif body.identifier.type == "m.id.thirdparty":
            user, medium, address = None, body.identifier.medium, body.identifier.address
        else:
            raise MatrixError(
                400, "M_UNKNOWN", "Only m.id.user and m.id.thirdparty identifiers are supported."
            )
    if body.password is None:
        raise missing_param("password is required.")
    if user:
        session = await request.app[ACCOUNTS].login_with_password(
            user, body.password, body.device_id, body.initial_device_display_name
        )
    elif medium and address:
        session = await request.app[ACCOUNTS].login_with_threepid(
            medium, address, body.password, body.device_id, body.initial_device_display_name
        )
    else:
        raise missing_param("identifier.user, or identifier.medium and address, is required.")
    return _logged_in(request, session)


# POST /_matrix/client/v3/logout
@routes.post(V3 + "/logout")
async def logout(request: web.Request) -> web.Response:
    await request.app[ACCOUNTS].logout(await requester(request))
    return ok()


# POST /_matrix/client/v3/logout/all
@routes.post(V3 + "/logout/all")
async def logout_all(request: web.Request) -> web.Response:
    await request.app[ACCOUNTS].logout_all(await requester(request))
    return ok()


# GET /_matrix/client/v3/account/whoami
@routes.get(V3 + "/account/whoami")
async def whoami(request: web.Request) -> web.Response:
    caller = await requester(request)
    return ok({"user_id": caller.user_id, "device_id": caller.device_id, "is_guest": False})


# POST /_matrix/client/v3/account/password
@routes.post(V3 + "/account/password")
async def change_password(request: web.Request) -> web.Response:
    body = await parse_body(request, PasswordBody)
    if access_token(request) is None:
        # A forgotten password: reset by proving an email address of the account.
        await request.app[ACCOUNTS].reset_password(_provided(body), body.auth)
        return ok()
    caller = await requester(request)
    await request.app[ACCOUNTS].change_password(caller, _provided(body), body.auth)
    return ok()


# POST /_matrix/client/v3/account/deactivate
@routes.post(V3 + "/account/deactivate")
async def deactivate_account(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await parse_body(request, DeactivateBody, empty_ok=True)
    session = await request.app[ACCOUNTS].require_password(
        caller, "POST /account/deactivate", body.auth, _provided(body)
    )
    await request.app[DEACTIVATION].deactivate(
        caller.user_id, erase=session.params.get("erase") is True
    )
    # No identity server is ever bound here, so none is asked to unbind.
    return ok({"id_server_unbind_result": "no-support"})


# GET /_matrix/client/v3/devices
@routes.get(V3 + "/devices")
async def list_devices(request: web.Request) -> web.Response:
    rows = await request.app[ACCOUNTS].devices(await requester(request))
    return ok({"devices": [_device_json(row) for row in rows]})


# GET /_matrix/client/v3/devices/{device_id}
@routes.get(V3 + "/devices/{device_id}")
async def get_device(request: web.Request) -> web.Response:
    row = await request.app[ACCOUNTS].device(
        await requester(request), request.match_info["device_id"]
    )
    return ok(_device_json(row))


# PUT /_matrix/client/v3/devices/{device_id}
@routes.put(V3 + "/devices/{device_id}")
async def update_device(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await parse_body(request, DeviceUpdateBody, empty_ok=True)
    device_id = request.match_info["device_id"]
    if "display_name" not in body.model_fields_set:
        await request.app[ACCOUNTS].device(caller, device_id)  # 404 for an unknown device
        return ok()
    await request.app[ACCOUNTS].rename_device(caller, device_id, body.display_name)
    return ok()


# DELETE /_matrix/client/v3/devices/{device_id}
@routes.delete(V3 + "/devices/{device_id}")
async def delete_device(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await parse_body(request, AuthOnlyBody, empty_ok=True)
    await request.app[ACCOUNTS].delete_device(caller, request.match_info["device_id"], body.auth)
    return ok()


# POST /_matrix/client/v3/delete_devices
@routes.post(V3 + "/delete_devices")
async def delete_devices(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await parse_body(request, DeleteDevicesBody)
    await request.app[ACCOUNTS].delete_devices(caller, _provided(body), body.auth)
    return ok()
