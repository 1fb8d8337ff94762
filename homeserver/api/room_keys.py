"""Server-side key backup: /room_keys/version[/{version}] and
/room_keys/keys[/{roomId}[/{sessionId}]]."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from homeserver.api.paths import V3
from homeserver.api.requests import RequestBody, json_object, parse_body, requester
from homeserver.api.responses import ok
from homeserver.e2ee.backup import BackupService, parse_rooms, parse_sessions
from homeserver.errors import missing_param

BACKUPS = web.AppKey("backups", BackupService)

routes = web.RouteTableDef()


class VersionBody(RequestBody):
    algorithm: str
    auth_data: dict[str, Any]
    version: str | None = None


def _path_version(request: web.Request) -> str | None:
    """The version the path names, or None for the current version."""
    return request.match_info.get("version")


def _version_param(request: web.Request) -> str:
    version = request.query.get("version")
    if version is None:
        raise missing_param("The version parameter is required.")
    return version


# POST /_matrix/client/v3/room_keys/version
@routes.post(V3 + "/room_keys/version")
async def create_version(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await parse_body(request, VersionBody)
    version = await request.app[BACKUPS].create_version(
        caller.user_id, body.algorithm, body.auth_data
    )
    return ok({"version": version})


# GET /_matrix/client/v3/room_keys/version
# GET /_matrix/client/v3/room_keys/version/{version}
@routes.get(V3 + "/room_keys/version")
@routes.get(V3 + "/room_keys/version/{version}")
async def get_version(request: web.Request) -> web.Response:
    caller = await requester(request)
    return ok(await request.app[BACKUPS].get_version(caller.user_id, _path_version(request)))


# PUT /_matrix/client/v3/room_keys/version/{version}
@routes.put(V3 + "/room_keys/version/{version}")
async def update_version(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await parse_body(request, VersionBody)
    await request.app[BACKUPS].update_version(
        caller.user_id, request.match_info["version"], body.algorithm, body.auth_data, body.version
    )
    return ok()


# DELETE /_matrix/client/v3/room_keys/version
# DELETE /_matrix/client/v3/room_keys/version/{version}
@routes.delete(V3 + "/room_keys/version")
@routes.delete(V3 + "/room_keys/version/{version}")
async def delete_version(request: web.Request) -> web.Response:
    caller = await requester(request)
    await request.app[BACKUPS].delete_version(caller.user_id, _path_version(request))
    return ok()


async def _keys_request(request: web.Request) -> tuple[str, str, str | None, str | None]:
    """The caller, the ?version= and the room and session a keys path names (None: all)."""
    caller = await requester(request)
    room_id, session_id = request.match_info.get("room_id"), request.match_info.get("session_id")
    return caller.user_id, _version_param(request), room_id, session_id


# PUT /_matrix/client/v3/room_keys/keys
# PUT /_matrix/client/v3/room_keys/keys/{room_id}
# PUT /_matrix/client/v3/room_keys/keys/{room_id}/{session_id}
@routes.put(V3 + "/room_keys/keys")
@routes.put(V3 + "/room_keys/keys/{room_id}")
@routes.put(V3 + "/room_keys/keys/{room_id}/{session_id}")
async def put_keys(request: web.Request) -> web.Response:
    user_id, version, room_id, session_id = await _keys_request(request)
    body = await json_object(request)
    if room_id is None:
        keys = parse_rooms(body)
    elif session_id is None:
        keys = parse_sessions(room_id, body)
    else:
        keys = parse_sessions(room_id, {"sessions": {session_id: body}})
    return ok(await request.app[BACKUPS].put_keys(user_id, version, keys))


# GET /_matrix/client/v3/room_keys/keys
# GET /_matrix/client/v3/room_keys/keys/{room_id}
# GET /_matrix/client/v3/room_keys/keys/{room_id}/{session_id}
@routes.get(V3 + "/room_keys/keys")
@routes.get(V3 + "/room_keys/keys/{room_id}")
@routes.get(V3 + "/room_keys/keys/{room_id}/{session_id}")
async def get_keys(request: web.Request) -> web.Response:
    user_id, version, room_id, session_id = await _keys_request(request)
    return ok(await request.app[BACKUPS].get_keys(user_id, version, room_id, session_id))


# DELETE /_matrix/client/v3/room_keys/keys
# DELETE /_matrix/client/v3/room_keys/keys/{room_id}
# DELETE /_matrix/client/v3/room_keys/keys/{room_id}/{session_id}
@routes.delete(V3 + "/room_keys/keys")
@routes.delete(V3 + "/room_keys/keys/{room_id}")
@routes.delete(V3 + "/room_keys/keys/{room_id}/{session_id}")
async def delete_keys(request: web.Request) -> web.Response:
    user_id, version, room_id, session_id = await _keys_request(request)
    return ok(await request.app[BACKUPS].delete_keys(user_id, version, room_id, session_id))
