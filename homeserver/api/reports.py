"""Reporting content: POST /rooms/{roomId}/report/{eventId}, /rooms/{roomId}/report and
/users/{userId}/report. What may be reported, and where reports go, is the report
service's (homeserver/moderation/reports.py); each is rate-limited per reporter."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field, StrictInt, StrictStr

from homeserver.api.app_keys import RATE_LIMITER
from homeserver.api.paths import V3
from homeserver.api.requests import RequestBody, parse_body, requester, room_id_param, user_id_param
from homeserver.api.responses import ok
from homeserver.errors import invalid_param
from homeserver.events.content.reports import MAX_REASON_LENGTH, MAX_SCORE, MIN_SCORE
from homeserver.moderation.reports import ReportService
from homeserver.ratelimit.limiter import Action

routes = web.RouteTableDef()
REPORTS = web.AppKey("reports", ReportService)


class ReportBody(RequestBody):
    reason: StrictStr | None = Field(None, max_length=MAX_REASON_LENGTH)


class EventReportBody(ReportBody):
    score: StrictInt | None = None


async def _reporter(request: web.Request) -> str:
    caller = await requester(request)
    await request.app[RATE_LIMITER].limit_user(Action.REPORT, caller.user_id)
    return caller.user_id


# POST /_matrix/client/v3/rooms/{room_id}/report/{event_id}
@routes.post(V3 + "/rooms/{room_id}/report/{event_id}")
async def report_event(request: web.Request) -> web.Response:
    reporter = await _reporter(request)
    body = await parse_body(request, EventReportBody)
    if body.score is not None and not MIN_SCORE <= body.score <= MAX_SCORE:
        raise invalid_param(f"score must be between {MIN_SCORE} and {MAX_SCORE}.")
    await request.app[REPORTS].report_event(
        reporter, room_id_param(request), request.match_info["event_id"], body.reason, body.score
    )
    return ok()


# POST /_matrix/client/v3/rooms/{room_id}/report
@routes.post(V3 + "/rooms/{room_id}/report")
async def report_room(request: web.Request) -> web.Response:
    reporter = await _reporter(request)
    body = await parse_body(request, ReportBody)
    await request.app[REPORTS].report_room(reporter, room_id_param(request), body.reason)
    return ok()


# POST /_matrix/client/v3/users/{user_id}/report
@routes.post(V3 + "/users/{user_id}/report")
async def report_user(request: web.Request) -> web.Response:
    reporter = await _reporter(request)
    body = await parse_body(request, ReportBody)
    await request.app[REPORTS].report_user(reporter, user_id_param(request), body.reason)
    return ok()
