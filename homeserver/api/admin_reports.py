"""Admin API: reports of events, rooms and users, as Synapse serves them:
GET /_synapse/admin/v1/{event,room,user}_reports (paged by offset, filtered) and
GET/DELETE /_synapse/admin/v1/{event,room,user}_reports/{reportId}.

What a report holds and how a deletion is recorded is the report queue's
(homeserver/moderation/report_queue.py).
"""

from __future__ import annotations

from aiohttp import web

from homeserver.api.admin_requests import admin_reason, admin_requester, forwards_param
from homeserver.api.paths import SYNAPSE_ADMIN
from homeserver.api.requests import int_param
from homeserver.api.responses import ok
from homeserver.errors import invalid_param
from homeserver.events.content.reports import ReportKind
from homeserver.moderation.report_queue import ReportFilter, ReportQueue

REPORT_QUEUE = web.AppKey("report_queue", ReportQueue)

routes = web.RouteTableDef()

DEFAULT_LIMIT = 100
# A longer page is cut to this; `next_token` goes on from where it ends.
MAX_LIMIT = 1000
KINDS: dict[str, ReportKind] = {
    "event_reports": "event",
    "room_reports": "room",
    "user_reports": "user",
}
_LISTS = "{kind:event_reports|room_reports|user_reports}"


def _report_id(request: web.Request) -> int:
    raw = request.match_info["report_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise invalid_param(
            "The report_id parameter must be a string representing a positive integer."
        )
    return int(raw)


# GET /_synapse/admin/v1/event_reports (and room_reports, user_reports)
@routes.get(SYNAPSE_ADMIN + "/v1/" + _LISTS)
async def list_reports(request: web.Request) -> web.Response:
    await admin_requester(request)
    name = request.match_info["kind"]
    offset = int_param(request, "from", 0)
    limit = min(int_param(request, "limit", DEFAULT_LIMIT), MAX_LIMIT)
    forwards = forwards_param(request, "b")
    found = ReportFilter(
        reporter=request.query.get("user_id"),
        room_id=request.query.get("room_id"),
        sender=request.query.get("event_sender_user_id"),
        target=request.query.get("target_user_id"),
    )
    reports, total = await request.app[REPORT_QUEUE].page(
        KINDS[name], found, offset=offset, limit=limit, newest_first=not forwards
    )
    body: dict[str, object] = {name: reports, "total": total}
    if offset + limit < total:
        body["next_token"] = offset + len(reports)
    return ok(body)


# GET /_synapse/admin/v1/event_reports/{report_id} (and room_reports, user_reports)
@routes.get(SYNAPSE_ADMIN + "/v1/" + _LISTS + "/{report_id}")
async def get_report(request: web.Request) -> web.Response:
    await admin_requester(request)
    kind = KINDS[request.match_info["kind"]]
    return ok(await request.app[REPORT_QUEUE].report(kind, _report_id(request)))


# DELETE /_synapse/admin/v1/event_reports/{report_id} (and room_reports, user_reports)
@routes.delete(SYNAPSE_ADMIN + "/v1/" + _LISTS + "/{report_id}")
async def delete_report(request: web.Request) -> web.Response:
    caller = await admin_requester(request)
    kind = KINDS[request.match_info["kind"]]
    report_id = _report_id(request)
    reason = await admin_reason(request)
    await request.app[REPORT_QUEUE].delete(caller.user_id, kind, report_id, reason)
    return ok()
