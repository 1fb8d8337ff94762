"""Admin API: user accounts (Synapse's User Admin API, docs/admin_api/user_admin_api.md)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field, StrictBool, StrictInt, StrictStr

from homeserver.admin.ratelimits import RateLimitOverrides
from homeserver.admin.threepids import canonical
from homeserver.admin.users import (
    Device,
    UploadRow,
    UserAdmin,
    UserChanges,
    UserDetails,
    UserQuery,
    UserRow,
)
from homeserver.api.admin_requests import (
    AdminBody,
    admin_on_user,
    admin_reason,
    admin_requester,
    bool_param,
    forwards_param,
)
from homeserver.api.app_keys import SERVER_ADMINS
from homeserver.api.paths import SYNAPSE_ADMIN
from homeserver.api.pushers import PUSHERS
from homeserver.api.requests import RequestBody, int_param, parse_body, requester, user_id_param
from homeserver.api.responses import ok
from homeserver.errors import invalid_param, not_found

USER_ADMIN = web.AppKey("user_admin", UserAdmin)
RATELIMIT_OVERRIDES = web.AppKey("ratelimit_overrides", RateLimitOverrides)

routes = web.RouteTableDef()

DEFAULT_LIMIT = 100


class AdminFlagBody(AdminBody):
    admin: StrictBool


class DeactivateBody(AdminBody):
    erase: StrictBool = False


class ThreepidBody(RequestBody):
    medium: StrictStr
    address: StrictStr


class PutUserBody(AdminBody):
    # Synapse refuses longer passwords ("Invalid password"); so do we, before hashing.
    password: StrictStr | None = Field(default=None, max_length=512)
    logout_devices: StrictBool = True
    displayname: StrictStr | None = None
    avatar_url: StrictStr | None = None
    threepids: list[ThreepidBody] | None = None
    admin: StrictBool | None = None
    deactivated: StrictBool | None = None
    # Accepted and ignored, as nothing here has them: external_ids, user_type, locked.


def _listed_user(row: UserRow) -> dict[str, Any]:
    """A user as GET /_synapse/admin/v2/users lists them."""
    return {
        "name": row.user_id,
        "is_guest": row.kind == "guest",
        "admin": row.admin,
        "user_type": None if row.kind == "user" else row.kind,
        "deactivated": row.deactivated,
        "erased": row.erased,
        "shadow_banned": row.shadow_banned,
        "displayname": row.displayname,
        "avatar_url": row.avatar_url,
        "creation_ts": row.created_ts,
        "last_seen_ts": row.last_seen_ts,
        "locked": False,
    }


def _user(details: UserDetails) -> dict[str, Any]:
    """A user as GET /_synapse/admin/v2/users/{userId} shows them."""
    return {
        **_listed_user(details.row),
        "threepids": [
            {
                "medium": item.medium,
                "address": item.address,
                "added_at": item.added_at,
                "validated_at": item.validated_at,
            }
            for item in details.threepids
        ],
        "appservice_id": None,
        "consent_server_notice_sent": None,
        "consent_version": None,
        "consent_ts": None,
        "external_ids": [],
        "suspended": False,
    }


# GET /_synapse/admin/v2/users
@routes.get(SYNAPSE_ADMIN + "/v2/users")
async def list_users(request: web.Request) -> web.Response:
    await admin_requester(request)
    query = UserQuery(
        name=request.query.get("name") or None,
        user_id=request.query.get("user_id") or None,
        guests=bool_param(request, "guests", True) is True,
        deactivated=bool_param(request, "deactivated", False) is True,
        admins=bool_param(request, "admins", None),
        order_by=request.query.get("order_by", "name"),
        forwards=forwards_param(request, "f"),
    )
    rows, total, following = await request.app[USER_ADMIN].users(
        query, int_param(request, "from", 0), int_param(request, "limit", DEFAULT_LIMIT)
    )
    body: dict[str, Any] = {"users": [_listed_user(row) for row in rows], "total": total}
    if following is not None:
        body["next_token"] = str(following)
    return ok(body)


# GET /_synapse/admin/v2/users/{user_id}
@routes.get(SYNAPSE_ADMIN + "/v2/users/{user_id}")
async def get_user(request: web.Request) -> web.Response:
    await admin_requester(request)
    return ok(_user(await request.app[USER_ADMIN].user(user_id_param(request))))


# PUT /_synapse/admin/v2/users/{user_id}
@routes.put(SYNAPSE_ADMIN + "/v2/users/{user_id}")
async def put_user(request: web.Request) -> web.Response:
    caller, user_id = await admin_on_user(request)
    body = await parse_body(request, PutUserBody)
    changes = UserChanges(
        password=body.password,
        logout_devices=body.logout_devices,
        displayname=body.displayname,
        avatar_url=body.avatar_url,
        threepids=None
        if body.threepids is None
        else [canonical(item.medium, item.address) for item in body.threepids],
        admin=body.admin,
        deactivated=body.deactivated,
    )
    created, details = await request.app[USER_ADMIN].put_user(
        caller.user_id, user_id, changes, body.reason
    )
    return ok(_user(details), status=201 if created else 200)


# GET /_synapse/admin/v1/users/{user_id}/admin
@routes.get(SYNAPSE_ADMIN + "/v1/users/{user_id}/admin")
async def get_server_admin(request: web.Request) -> web.Response:
    _, user_id = await admin_on_user(request)
    admins = request.app[SERVER_ADMINS]
    if not await admins.user_exists(user_id):
        raise not_found("User not found")
    return ok({"admin": await admins.is_admin(user_id)})


# PUT /_synapse/admin/v1/users/{user_id}/admin
@routes.put(SYNAPSE_ADMIN + "/v1/users/{user_id}/admin")
async def set_server_admin(request: web.Request) -> web.Response:
    caller, user_id = await admin_on_user(request)
    body = await parse_body(request, AdminFlagBody)
    await request.app[SERVER_ADMINS].set_admin(caller.user_id, user_id, body.admin, body.reason)
    return ok({})


# POST /_synapse/admin/v1/deactivate/{user_id}
@routes.post(SYNAPSE_ADMIN + "/v1/deactivate/{user_id}")
async def deactivate_user(request: web.Request) -> web.Response:
    caller, user_id = await admin_on_user(request)
    # An empty body is allowed, as Synapse allows it (older clients send none).
    body = await parse_body(request, DeactivateBody, empty_ok=True)
    await request.app[USER_ADMIN].deactivate(caller.user_id, user_id, body.erase, body.reason)
    return ok({"id_server_unbind_result": "success"})


class DeviceRenameBody(AdminBody):
    display_name: StrictStr | None = Field(default=None, max_length=512)


class DeleteDevicesBody(AdminBody):
    devices: list[StrictStr]


class ResetPasswordBody(AdminBody):
    new_password: StrictStr = Field(max_length=512)
    logout_devices: StrictBool = True


def _device(user_id: str, device: Device) -> dict[str, Any]:
    """A device as Synapse's admin API shows it; where it was last seen is not kept here."""
    shown: dict[str, Any] = {
        "device_id": device.device_id,
        "last_seen_ip": None,
        "last_seen_user_agent": None,
        "last_seen_ts": device.last_seen_ts,
        "user_id": user_id,
        "dehydrated": False,
    }
    if device.display_name is not None:
        shown["display_name"] = device.display_name
    return shown


def _device_id_param(request: web.Request) -> str:
    device_id = request.match_info["device_id"]
    if not device_id or len(device_id) > 255:
        raise invalid_param("Invalid device ID.")
    return device_id


# GET /_synapse/admin/v2/users/{user_id}/devices
@routes.get(SYNAPSE_ADMIN + "/v2/users/{user_id}/devices")
async def list_user_devices(request: web.Request) -> web.Response:
    _, user_id = await admin_on_user(request)
    devices = await request.app[USER_ADMIN].devices(user_id)
    return ok({"devices": [_device(user_id, d) for d in devices], "total": len(devices)})


# POST /_synapse/admin/v2/users/{user_id}/delete_devices
@routes.post(SYNAPSE_ADMIN + "/v2/users/{user_id}/delete_devices")
async def delete_user_devices(request: web.Request) -> web.Response:
    caller, user_id = await admin_on_user(request)
    body = await parse_body(request, DeleteDevicesBody)
    await request.app[USER_ADMIN].delete_devices(caller.user_id, user_id, body.devices, body.reason)
    return ok({})


# GET /_synapse/admin/v2/users/{user_id}/devices/{device_id}
@routes.get(SYNAPSE_ADMIN + "/v2/users/{user_id}/devices/{device_id}")
async def get_user_device(request: web.Request) -> web.Response:
    _, user_id = await admin_on_user(request)
    device = await request.app[USER_ADMIN].device(user_id, _device_id_param(request))
    return ok(_device(user_id, device))


# PUT /_synapse/admin/v2/users/{user_id}/devices/{device_id}
@routes.put(SYNAPSE_ADMIN + "/v2/users/{user_id}/devices/{device_id}")
async def rename_user_device(request: web.Request) -> web.Response:
    caller, user_id = await admin_on_user(request)
    device_id = _device_id_param(request)
    body = await parse_body(request, DeviceRenameBody, empty_ok=True)
    if "display_name" in body.model_fields_set:
        await request.app[USER_ADMIN].rename_device(
            caller.user_id, user_id, device_id, body.display_name, body.reason
        )
    else:
        await request.app[USER_ADMIN].device(user_id, device_id)  # 404 for an unknown one
    return ok({})


# DELETE /_synapse/admin/v2/users/{user_id}/devices/{device_id}
@routes.delete(SYNAPSE_ADMIN + "/v2/users/{user_id}/devices/{device_id}")
async def delete_user_device(request: web.Request) -> web.Response:
    caller, user_id = await admin_on_user(request)
    device_id = _device_id_param(request)
    reason = await admin_reason(request)
    await request.app[USER_ADMIN].delete_devices(caller.user_id, user_id, [device_id], reason)
    return ok({})


# POST /_synapse/admin/v1/reset_password/{user_id}
@routes.post(SYNAPSE_ADMIN + "/v1/reset_password/{user_id}")
async def reset_password(request: web.Request) -> web.Response:
    caller, user_id = await admin_on_user(request)
    body = await parse_body(request, ResetPasswordBody)
    await request.app[USER_ADMIN].reset_password(
        caller.user_id, user_id, body.new_password, body.logout_devices, body.reason
    )
    return ok({})


def _whois(user_id: str, devices: list[Device]) -> dict[str, Any]:
    """Synapse's whois: each device's sessions. Connections (IP address, user agent) are
    not recorded here: a device's one connection is when its newest token was issued."""
    return {
        "user_id": user_id,
        "devices": {
            device.device_id: {
                "sessions": [
                    {
                        "connections": []
                        if device.last_seen_ts is None
                        else [{"ip": None, "last_seen": device.last_seen_ts, "user_agent": None}]
                    }
                ]
            }
            for device in devices
        },
    }


# GET /_synapse/admin/v1/whois/{user_id}
@routes.get(SYNAPSE_ADMIN + "/v1/whois/{user_id}")
async def whois(request: web.Request) -> web.Response:
    _, user_id = await admin_on_user(request)
    return ok(_whois(user_id, await request.app[USER_ADMIN].devices(user_id)))


# GET /_matrix/client/v3/admin/whois/{user_id}
@routes.get("/_matrix/client/v3/admin/whois/{user_id}")
async def client_whois(request: web.Request) -> web.Response:
    # The spec's whois: a server admin, or the user asking about themself (as Synapse).
    caller = await requester(request)
    user_id = user_id_param(request)
    if caller.user_id != user_id:
        await request.app[SERVER_ADMINS].require_admin(caller.user_id)
    return ok(_whois(user_id, await request.app[USER_ADMIN].devices(user_id)))


class OverrideBody(AdminBody):
    # Synapse's defaults: both 0, which lifts every limit.
    messages_per_second: object = 0
    burst_count: object = 0


class LoginAsBody(AdminBody):
    valid_until_ms: StrictInt | None = Field(default=None, ge=0, le=2**53 - 1)


def _count(body: OverrideBody, name: str) -> int:
    value = getattr(body, name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise invalid_param(f"{name!r} parameter must be a positive int")
    return value


# GET /_synapse/admin/v1/users/{user_id}/override_ratelimit
@routes.get(SYNAPSE_ADMIN + "/v1/users/{user_id}/override_ratelimit")
async def get_ratelimit_override(request: web.Request) -> web.Response:
    _, user_id = await admin_on_user(request)
    await request.app[USER_ADMIN].check_user(user_id)
    found = await request.app[RATELIMIT_OVERRIDES].override(user_id)
    if found is None:
        return ok({})
    return ok({"messages_per_second": found[0], "burst_count": found[1]})


# POST /_synapse/admin/v1/users/{user_id}/override_ratelimit
@routes.post(SYNAPSE_ADMIN + "/v1/users/{user_id}/override_ratelimit")
async def set_ratelimit_override(request: web.Request) -> web.Response:
    caller, user_id = await admin_on_user(request)
    body = await parse_body(request, OverrideBody, empty_ok=True)
    rate, burst = _count(body, "messages_per_second"), _count(body, "burst_count")
    await request.app[USER_ADMIN].check_user(user_id)
    await request.app[RATELIMIT_OVERRIDES].set(caller.user_id, user_id, (rate, burst), body.reason)
    return ok({"messages_per_second": rate, "burst_count": burst})


# DELETE /_synapse/admin/v1/users/{user_id}/override_ratelimit
@routes.delete(SYNAPSE_ADMIN + "/v1/users/{user_id}/override_ratelimit")
async def delete_ratelimit_override(request: web.Request) -> web.Response:
    caller, user_id = await admin_on_user(request)
    reason = await admin_reason(request)
    await request.app[USER_ADMIN].check_user(user_id)
    if await request.app[RATELIMIT_OVERRIDES].override(user_id) is not None:
        await request.app[RATELIMIT_OVERRIDES].set(caller.user_id, user_id, None, reason)
    return ok({})


# POST /_synapse/admin/v1/users/{user_id}/login
@routes.post(SYNAPSE_ADMIN + "/v1/users/{user_id}/login")
async def login_as_user(request: web.Request) -> web.Response:
    caller, user_id = await admin_on_user(request)
    body = await parse_body(request, LoginAsBody, empty_ok=True)
    token = await request.app[USER_ADMIN].login_as(
        caller.user_id, user_id, body.valid_until_ms, body.reason
    )
    return ok({"access_token": token})


# GET /_synapse/admin/v1/users/{user_id}/joined_rooms
@routes.get(SYNAPSE_ADMIN + "/v1/users/{user_id}/joined_rooms")
async def user_joined_rooms(request: web.Request) -> web.Response:
    await admin_requester(request)
    memberships = await request.app[USER_ADMIN].memberships(user_id_param(request))
    joined = [room for room, membership in memberships.items() if membership == "join"]
    return ok({"joined_rooms": joined, "total": len(joined)})


# GET /_synapse/admin/v1/users/{user_id}/memberships
@routes.get(SYNAPSE_ADMIN + "/v1/users/{user_id}/memberships")
async def user_memberships(request: web.Request) -> web.Response:
    await admin_requester(request)
    return ok({"memberships": await request.app[USER_ADMIN].memberships(user_id_param(request))})


# GET /_synapse/admin/v1/users/{user_id}/pushers
@routes.get(SYNAPSE_ADMIN + "/v1/users/{user_id}/pushers")
async def user_pushers(request: web.Request) -> web.Response:
    _, user_id = await admin_on_user(request)
    await request.app[USER_ADMIN].check_user(user_id)
    pushers = await request.app[PUSHERS].pushers(user_id)
    return ok({"pushers": pushers, "total": len(pushers)})


def _upload(row: UploadRow) -> dict[str, Any]:
    return {
        "created_ts": row.created_ts,
        "last_access_ts": None,
        "media_id": row.media_id,
        "media_length": row.size,
        "media_type": row.content_type,
        "quarantined_by": row.quarantined_by,
        "safe_from_quarantine": False,
        "upload_name": row.filename,
    }


# GET /_synapse/admin/v1/users/{user_id}/media
@routes.get(SYNAPSE_ADMIN + "/v1/users/{user_id}/media")
async def user_media(request: web.Request) -> web.Response:
    _, user_id = await admin_on_user(request)
    forwards = forwards_param(request, "f") if "dir" in request.query else None
    rows, total, following = await request.app[USER_ADMIN].uploads(
        user_id,
        request.query.get("order_by"),
        forwards,
        int_param(request, "from", 0),
        int_param(request, "limit", DEFAULT_LIMIT),
    )
    body: dict[str, Any] = {"media": [_upload(row) for row in rows], "total": total}
    if following is not None:
        body["next_token"] = following  # an integer here, as Synapse
    return ok(body)
