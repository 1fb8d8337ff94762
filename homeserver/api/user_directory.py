"""The user directory: POST /user_directory/search."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field, StrictInt, StrictStr

from homeserver.api.paths import V3
from homeserver.api.requests import RequestBody, parse_body, requester
from homeserver.api.responses import ok
from homeserver.profiles.directory import DEFAULT_LIMIT, UserDirectoryService

USER_DIRECTORY = web.AppKey("user_directory", UserDirectoryService)

routes = web.RouteTableDef()


class SearchBody(RequestBody):
    search_term: StrictStr
    limit: StrictInt = Field(DEFAULT_LIMIT, ge=0)


# POST /_matrix/client/v3/user_directory/search
@routes.post(V3 + "/user_directory/search")
async def search_users(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await parse_body(request, SearchBody)
    directory = request.app[USER_DIRECTORY]
    return ok(await directory.search(caller.user_id, body.search_term, body.limit))
