"""Parsing requests: JSON bodies into pydantic models, and the caller's access token."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from homeserver.accounts.identifiers import MAX_USER_ID_LENGTH
from homeserver.accounts.service import Requester
from homeserver.api.app_keys import ACCOUNTS, TRUSTED_PROXIES
from homeserver.errors import MatrixError, bad_json, invalid_param, not_json
from homeserver.events.client_json import decode_client_json
from homeserver.events.types import is_room_id, is_user_id
from homeserver.media.uris import is_valid_media_id, is_valid_server_name

Body = TypeVar("Body", bound=BaseModel)


class RequestBody(BaseModel):
    """Request bodies ignore keys they do not know, as Matrix servers do."""

    model_config = ConfigDict(extra="ignore")


async def json_object(request: web.Request, *, empty_ok: bool = False) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        if empty_ok:
            return {}
        raise not_json("Request body is empty; a JSON object is required.")
    value = decode_client_json(raw)
    if not isinstance(value, dict):
        raise bad_json("Content must be a JSON object.")
    return value


async def parse_body(request: web.Request, model: type[Body], *, empty_ok: bool = False) -> Body:
    return model.model_validate(await json_object(request, empty_ok=empty_ok))


def access_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        raise MatrixError(401, "M_MISSING_TOKEN", "Malformed Authorization header.")
    return request.query.get("access_token")


async def requester(request: web.Request) -> Requester:
    token = access_token(request)
    if token is None:
        raise MatrixError(401, "M_MISSING_TOKEN", "Missing access token.")
    found = await request.app[ACCOUNTS].requester_for_token(token)
    return found


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def forwarded_client(peer: str, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The client's address: `peer`, unless it is a trusted proxy whose X-Forwarded-For
    names the client. Read from the right: each proxy appends the address it saw, so
    the first address that is not a trusted proxy is the client; anything left of it
    is the client's own to invent."""

    def is_trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in trusted)

    if not forwarded_for or not is_trusted(peer):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            return hop
    return hops[0] if hops else peer


def client_address(request: web.Request) -> str:
    """The client's IP address, behind the proxies of listen.trusted_proxies too."""
    trusted: tuple[Network, ...] = request.app[TRUSTED_PROXIES]
    return forwarded_client(
        request.remote or "unknown", request.headers.get("X-Forwarded-For"), trusted
    )


def room_id_param(request: web.Request) -> str:
    """The `{room_id}` of the path, which must look like a room ID."""
    room_id = request.match_info["room_id"]
    if not is_room_id(room_id):
        raise MatrixError(400, "M_INVALID_PARAM", f"{room_id!r} is not a room ID.")
    return room_id


def user_id_param(request: web.Request, name: str = "user_id") -> str:
    """The `{name}` of the path, which must look like a user ID."""
    user_id = request.match_info[name]
    if not is_user_id(user_id) or len(user_id) > MAX_USER_ID_LENGTH:
        raise invalid_param(f"{user_id!r} is not a valid user ID.")
    return user_id


def int_param(request: web.Request, name: str, default: int) -> int:
    """A non-negative integer query parameter (`default` when absent)."""
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or len(raw) > 15:
        raise invalid_param(f"{name} must be a non-negative integer.")
    return int(raw)


def media_path(request: web.Request) -> tuple[str, str]:
    """`{server_name}` and `{media_id}` of the path, checked against the mxc grammar."""
    server_name = request.match_info["server_name"]
    media_id = request.match_info["media_id"]
    if not is_valid_server_name(server_name):
        raise invalid_param(f"{server_name!r} is not a server name.")
    if not is_valid_media_id(media_id):
        raise invalid_param("A media ID may only contain A-Z, a-z, 0-9, '_' and '-'.")
    return server_name, media_id
