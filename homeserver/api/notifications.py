"""GET /notifications: the events the user's push rules notified them of."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.paths import V3
from homeserver.api.requests import requester
from homeserver.api.responses import ok
from homeserver.errors import invalid_param
from homeserver.push.service import NotificationService

NOTIFICATIONS = web.AppKey("notifications", NotificationService)

routes = web.RouteTableDef()
DEFAULT_LIMIT = 20


def _number(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise invalid_param(f"{name} must be a non-negative integer.")
    return int(raw)


# GET /_matrix/client/v3/notifications
@routes.get(V3 + "/notifications")
async def get_notifications(request: web.Request) -> web.Response:
    caller = await requester(request)
    before = _number(request, "from")
    limit = _number(request, "limit")
    only = request.query.get("only")
    notifications, following = await request.app[NOTIFICATIONS].notifications(
        caller.user_id,
        before,
        limit if limit is not None and limit > 0 else DEFAULT_LIMIT,
        only == "highlight",
    )
    body: dict[str, object] = {"notifications": notifications}
    if following is not None:
        body["next_token"] = str(following)
    return ok(body)
