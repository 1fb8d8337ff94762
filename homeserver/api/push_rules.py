"""Push rules: GET /pushrules/, and reading and editing one rule, its `enabled` and `actions`."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.paths import V3
from homeserver.api.requests import json_object, requester
from homeserver.api.responses import ok
from homeserver.errors import not_found
from homeserver.push import ruleset as rules_of
from homeserver.push.default_rules import Rule
from homeserver.push.service import PushRuleService

PUSH_RULES = web.AppKey("push_rules", PushRuleService)

routes = web.RouteTableDef()
RULE = V3 + "/pushrules/{scope}/{kind}/{rule_id}"
ATTRIBUTE = RULE + "/{attribute:enabled|actions}"


def _where(request: web.Request) -> tuple[str, str]:
    scope, kind = request.match_info["scope"], request.match_info["kind"]
    rules_of.check_kind(scope, kind)
    return kind, request.match_info["rule_id"]


async def _rule(request: web.Request) -> Rule:
    caller = await requester(request)
    kind, rule_id = _where(request)
    ruleset = await request.app[PUSH_RULES].ruleset(caller.user_id)
    rule = rules_of.find(ruleset, kind, rule_id)
    if rule is None:
        raise not_found("The push rule was not found.")
    return rule


def _query(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    return value if value else None


# GET /_matrix/client/v3/pushrules/
@routes.get(V3 + "/pushrules/")
@routes.get(V3 + "/pushrules")
async def get_push_rules(request: web.Request) -> web.Response:
    caller = await requester(request)
    return ok({"global": await request.app[PUSH_RULES].ruleset(caller.user_id)})


# GET /_matrix/client/v3/pushrules/global/
@routes.get(V3 + "/pushrules/{scope}/")
@routes.get(V3 + "/pushrules/{scope}")
async def get_push_rules_scope(request: web.Request) -> web.Response:
    caller = await requester(request)
    rules_of.check_kind(request.match_info["scope"], "override")
    return ok(await request.app[PUSH_RULES].ruleset(caller.user_id))


# GET /_matrix/client/v3/pushrules/global/{kind}/
@routes.get(V3 + "/pushrules/{scope}/{kind}/")
async def get_push_rules_kind(request: web.Request) -> web.Response:
    caller = await requester(request)
    rules_of.check_kind(request.match_info["scope"], request.match_info["kind"])
    ruleset = await request.app[PUSH_RULES].ruleset(caller.user_id)
    return ok(ruleset[request.match_info["kind"]])


# GET /_matrix/client/v3/pushrules/{scope}/{kind}/{rule_id}
@routes.get(RULE)
async def get_push_rule(request: web.Request) -> web.Response:
    return ok(await _rule(request))


# PUT /_matrix/client/v3/pushrules/{scope}/{kind}/{rule_id}
@routes.put(RULE)
async def put_push_rule(request: web.Request) -> web.Response:
    caller = await requester(request)
    kind, rule_id = _where(request)
    body = await json_object(request)
    await request.app[PUSH_RULES].put_rule(
        caller.user_id, kind, rule_id, body, _query(request, "before"), _query(request, "after")
    )
    return ok()


# DELETE /_matrix/client/v3/pushrules/{scope}/{kind}/{rule_id}
@routes.delete(RULE)
async def delete_push_rule(request: web.Request) -> web.Response:
    caller = await requester(request)
    kind, rule_id = _where(request)
    await request.app[PUSH_RULES].delete_rule(caller.user_id, kind, rule_id)
    return ok()


# GET /_matrix/client/v3/pushrules/{scope}/{kind}/{rule_id}/enabled
# GET /_matrix/client/v3/pushrules/{scope}/{kind}/{rule_id}/actions
@routes.get(ATTRIBUTE)
async def get_push_rule_attribute(request: web.Request) -> web.Response:
    attribute = request.match_info["attribute"]
    return ok({attribute: (await _rule(request))[attribute]})


# PUT /_matrix/client/v3/pushrules/{scope}/{kind}/{rule_id}/enabled
# PUT /_matrix/client/v3/pushrules/{scope}/{kind}/{rule_id}/actions
@routes.put(ATTRIBUTE)
async def put_push_rule_attribute(request: web.Request) -> web.Response:
    caller = await requester(request)
    kind, rule_id = _where(request)
    body = await json_object(request)
    await request.app[PUSH_RULES].set_attribute(
        caller.user_id, kind, rule_id, request.match_info["attribute"], body
    )
    return ok()
