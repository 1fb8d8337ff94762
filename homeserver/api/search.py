"""Server-side search: POST /search (the room_events category)."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import Field

from homeserver.api.paths import V3
from homeserver.api.requests import RequestBody, parse_body, requester
from homeserver.api.responses import ok
from homeserver.search.service import EventContext, RoomEventsCriteria, SearchService
from homeserver.sync.filters import RoomEventFilter

routes = web.RouteTableDef()
SEARCH = web.AppKey("search", SearchService)

SearchKey = Literal["content.body", "content.name", "content.topic"]


class EventContextBody(RequestBody):
    before_limit: int = Field(5, ge=0)
    after_limit: int = Field(5, ge=0)
    include_profile: bool = False


class GroupBody(RequestBody):
    key: Literal["room_id", "sender"]


class GroupingsBody(RequestBody):
    group_by: list[GroupBody] = []


class RoomEventsBody(RequestBody):
    search_term: str
    keys: list[SearchKey] | None = None
    filter: RoomEventFilter | None = None
    order_by: Literal["rank", "recent"] = "rank"
    event_context: EventContextBody | None = None
    include_state: bool = False
    groupings: GroupingsBody | None = None

    def criteria(self) -> RoomEventsCriteria:
        context = self.event_context
        group_by = self.groupings.group_by if self.groupings is not None else []
        return RoomEventsCriteria(
            search_term=self.search_term,
            # An empty list is read as the default, all of them.
            keys=self.keys or ["content.body", "content.name", "content.topic"],
            filter=self.filter or RoomEventFilter(),
            order_by=self.order_by,
            event_context=(
                EventContext(context.before_limit, context.after_limit, context.include_profile)
                if context is not None
                else None
            ),
            include_state=self.include_state,
            group_by=list(dict.fromkeys(group.key for group in group_by)),
        )


class SearchCategoriesBody(RequestBody):
    room_events: RoomEventsBody | None = None


class SearchBody(RequestBody):
    search_categories: SearchCategoriesBody


# POST /_matrix/client/v3/search
@routes.post(V3 + "/search")
async def search(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await parse_body(request, SearchBody)
    room_events = body.search_categories.room_events
    if room_events is None:
        # No category we know of was asked for.
        return ok({"search_categories": {}})
    result = await request.app[SEARCH].search(
        caller.user_id,
        caller.device_id,
        room_events.criteria(),
        next_batch=request.query.get("next_batch") or None,
    )
    return ok({"search_categories": {"room_events": result}})
