"""Admin API: user accounts (Synapse's User Admin API, docs/admin_api/user_admin_api.md)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field, StrictBool, StrictStr

from homeserver.admin.threepids import canonical
from homeserver.admin.users import UserAdmin, UserChanges, UserDetails, UserQuery, UserRow
from homeserver.api.admin_requests import (
    SYNAPSE_ADMIN,
    admin_requester,
    bool_param,
    forwards_param,
)
from homeserver.api.app_keys import SERVER_ADMINS
from homeserver.api.requests import RequestBody, int_param, ok, parse_body, user_id_param
from homeserver.errors import not_found

USER_ADMIN = web.AppKey("user_admin", UserAdmin)

routes = web.RouteTableDef()

DEFAULT_LIMIT = 100


class AdminFlagBody(RequestBody):
    admin: StrictBool
    # Ours: why, for the audit trail (Synapse's clients send none).
    reason: StrictStr | None = None


class DeactivateBody(RequestBody):
    erase: StrictBool = False
    reason: StrictStr | None = None


class ThreepidBody(RequestBody):
    medium: StrictStr
    address: StrictStr


class PutUserBody(RequestBody):
    # Synapse refuses longer passwords ("Invalid password"); so do we, before hashing.
    password: StrictStr | None = Field(default=None, max_length=512)
    logout_devices: StrictBool = True
    displayname: StrictStr | None = None
    avatar_url: StrictStr | None = None
    threepids: list[ThreepidBody] | None = None
    admin: StrictBool | None = None
    deactivated: StrictBool | None = None
    reason: StrictStr | None = None
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
        "shadow_banned": False,
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
    caller = await admin_requester(request)
    user_id = user_id_param(request)
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
    await admin_requester(request)
    user_id = user_id_param(request)
    admins = request.app[SERVER_ADMINS]
    if not await admins.user_exists(user_id):
        raise not_found("User not found")
    return ok({"admin": await admins.is_admin(user_id)})


# PUT /_synapse/admin/v1/users/{user_id}/admin
@routes.put(SYNAPSE_ADMIN + "/v1/users/{user_id}/admin")
async def set_server_admin(request: web.Request) -> web.Response:
    caller = await admin_requester(request)
    user_id = user_id_param(request)
    body = await parse_body(request, AdminFlagBody)
    await request.app[SERVER_ADMINS].set_admin(caller.user_id, user_id, body.admin, body.reason)
    return ok({})


# POST /_synapse/admin/v1/deactivate/{user_id}
@routes.post(SYNAPSE_ADMIN + "/v1/deactivate/{user_id}")
async def deactivate_user(request: web.Request) -> web.Response:
    caller = await admin_requester(request)
    user_id = user_id_param(request)
    # An empty body is allowed, as Synapse allows it (older clients send none).
    body = await parse_body(request, DeactivateBody, empty_ok=True)
    await request.app[USER_ADMIN].deactivate(caller.user_id, user_id, body.erase, body.reason)
    return ok({"id_server_unbind_result": "success"})
