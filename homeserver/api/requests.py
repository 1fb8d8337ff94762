"""Parsing requests: JSON bodies into pydantic models, and the caller's access token."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from homeserver.accounts.service import Requester
from homeserver.api.keys import ACCOUNTS
from homeserver.errors import MatrixError, bad_json, forbidden, not_json

Body = TypeVar("Body", bound=BaseModel)


class RequestBody(BaseModel):
    """Request bodies ignore keys they do not know, as Matrix servers do."""

    model_config = ConfigDict(extra="ignore")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def json_object(request: web.Request, *, empty_ok: bool = False) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        if empty_ok:
            return {}
        raise not_json("Request body is empty; a JSON object is required.")
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError):
        raise not_json("Content not JSON.") from None
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


def require_self(requester_: Requester, user_id: str) -> None:
    if requester_.user_id != user_id:
        raise forbidden("You may only act on your own account.")


def ok(body: object = None, status: int = 200) -> web.Response:
    return web.json_response({} if body is None else body, status=status)
