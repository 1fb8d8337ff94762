"""Admin API: the audit trail of admin actions (homeserver/admin/audit.py)."""

from __future__ import annotations

from aiohttp import web

from homeserver.admin.audit import ActionFilter
from homeserver.api.admin_requests import admin_requester, forwards_param
from homeserver.api.app_keys import AUDIT_TRAIL
from homeserver.api.paths import LINKCHAT_ADMIN
from homeserver.api.requests import int_param
from homeserver.api.responses import ok

routes = web.RouteTableDef()

DEFAULT_LIMIT = 100


def _ts_param(request: web.Request, name: str) -> int | None:
    return int_param(request, name, -1) if name in request.query else None


# GET /_linkchat/v1/admin/audit
@routes.get(LINKCHAT_ADMIN + "/audit")
async def list_admin_actions(request: web.Request) -> web.Response:
    await admin_requester(request)
    found = ActionFilter(
        admin_id=request.query.get("admin"),
        action=request.query.get("action"),
        target=request.query.get("target"),
        since_ts=_ts_param(request, "since_ts"),
        until_ts=_ts_param(request, "until_ts"),
    )
    page = await request.app[AUDIT_TRAIL].actions(
        found,
        token=request.query.get("from"),
        limit=int_param(request, "limit", DEFAULT_LIMIT),
        forwards=forwards_param(request, "b"),
    )
    body: dict[str, object] = {"actions": page.actions, "total": page.total}
    if page.next_token is not None:
        body["next_token"] = page.next_token
    return ok(body)
