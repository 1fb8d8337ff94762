"""The older path prefix `/_matrix/client/r0`: the endpoints that existed in r0 answer there
exactly as under `/v3`, as Synapse does, so clients that still ask r0 (matrix-commander
asks `GET /_matrix/client/r0/login` first) work unchanged."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

V3 = "/_matrix/client/v3/"
R0 = "/_matrix/client/r0/"
# Served under /v3 but never part of r0 (as Synapse registers them: v3 only).
NOT_IN_R0 = frozenset(
    {"keys/device_signing/upload", "rooms/{room_id}/report", "users/{user_id}/report"}
)


def r0_routes(routes: Iterable[web.AbstractRouteDef]) -> list[web.RouteDef]:
    """The r0 twins of the /v3 routes among `routes` that existed in r0."""
    twins = []
    for route in routes:
        if not isinstance(route, web.RouteDef) or not route.path.startswith(V3):
            continue
        rest = route.path.removeprefix(V3)
        if rest in NOT_IN_R0:
            continue
        twins.append(web.RouteDef(route.method, R0 + rest, route.handler, dict(route.kwargs)))
    return twins
