"""Push rules, read-only for now: every user gets the spec's server-default rules.

Editing (PUT/DELETE, /enabled and /actions writes) is a later issue; until then
those methods answer 405 M_UNRECOGNIZED from the middleware, as the spec asks
for a known endpoint with a method the server does not serve.
"""

from __future__ import annotations

from aiohttp import web

from homeserver.api.requests import ok, requester
from homeserver.errors import MatrixError, invalid_param, not_found
from homeserver.push.default_rules import KINDS, Rule, default_ruleset, find_rule

routes = web.RouteTableDef()
V3 = "/_matrix/client/v3"
RULE = V3 + "/pushrules/{scope}/{kind}/{rule_id}"


def _rule(request: web.Request, user_id: str) -> Rule:
    scope = request.match_info["scope"]
    kind = request.match_info["kind"]
    if scope != "global":
        raise invalid_param(f"Unknown push rule scope {scope!r}; only 'global' exists.")
    if kind not in KINDS:
        raise invalid_param(f"Unknown push rule kind {kind!r}; one of {', '.join(KINDS)}.")
    rule = find_rule(default_ruleset(user_id), kind, request.match_info["rule_id"])
    if rule is None:
        raise not_found("The push rule was not found.")
    return rule


def _no_scope(request: web.Request) -> MatrixError:
    return invalid_param(f"Unknown push rule scope {request.match_info['scope']!r}.")


# GET /_matrix/client/v3/pushrules/
@routes.get(V3 + "/pushrules/")
@routes.get(V3 + "/pushrules")
async def get_push_rules(request: web.Request) -> web.Response:
    caller = await requester(request)
    return ok({"global": default_ruleset(caller.user_id)})


# GET /_matrix/client/v3/pushrules/global/
@routes.get(V3 + "/pushrules/{scope}/")
@routes.get(V3 + "/pushrules/{scope}")
async def get_push_rules_scope(request: web.Request) -> web.Response:
    caller = await requester(request)
    if request.match_info["scope"] != "global":
        raise _no_scope(request)
    return ok(default_ruleset(caller.user_id))


# GET /_matrix/client/v3/pushrules/{scope}/{kind}/{rule_id}
@routes.get(RULE)
async def get_push_rule(request: web.Request) -> web.Response:
    caller = await requester(request)
    return ok(_rule(request, caller.user_id))


# GET /_matrix/client/v3/pushrules/{scope}/{kind}/{rule_id}/enabled
@routes.get(RULE + "/enabled")
async def get_push_rule_enabled(request: web.Request) -> web.Response:
    caller = await requester(request)
    return ok({"enabled": _rule(request, caller.user_id)["enabled"]})


# GET /_matrix/client/v3/pushrules/{scope}/{kind}/{rule_id}/actions
@routes.get(RULE + "/actions")
async def get_push_rule_actions(request: web.Request) -> web.Response:
    caller = await requester(request)
    return ok({"actions": _rule(request, caller.user_id)["actions"]})
