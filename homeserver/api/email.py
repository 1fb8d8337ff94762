"""Email addresses (the spec's 3PID API): requestToken, the validation page, 3pid/*."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from homeserver.api.paths import V3
from homeserver.api.requests import RequestBody, client_address, parse_body, requester
from homeserver.api.responses import ok
from homeserver.email.service import (
    ADD_THREEPID,
    PASSWORD_RESET,
    REGISTRATION,
    EmailService,
)
from homeserver.errors import MatrixError, missing_param

routes = web.RouteTableDef()
# Pages and forms the links in emails open: not an API clients call.
PAGES = "/_linkchat/client/email"
EMAILS = web.AppKey("emails", EmailService)
# public_baseurl, or "" to build links from the request's own address.
PUBLIC_BASEURL = web.AppKey("public_baseurl", str)


class RequestTokenBody(RequestBody):
    client_secret: str = Field(max_length=255)
    email: str = Field(max_length=512)
    send_attempt: int = Field(ge=0, le=2**53)
    next_link: str | None = Field(None, max_length=2048)
    id_server: str | None = None
    id_access_token: str | None = None


class SubmitTokenBody(RequestBody):
    sid: str = Field(max_length=255)
    client_secret: str = Field(max_length=255)
    token: str = Field(max_length=255)


class AddBody(RequestBody):
    sid: str | None = Field(None, max_length=255)
    client_secret: str | None = Field(None, max_length=255)
    auth: dict[str, Any] | None = None


class DeleteBody(RequestBody):
    medium: str = Field(max_length=32)
    address: str = Field(max_length=512)
    id_server: str | None = None


def _base_url(request: web.Request) -> str:
    return request.app[PUBLIC_BASEURL] or f"{request.scheme}://{request.host}"


def _page(request: web.Request, template: str, error: MatrixError | None = None) -> web.Response:
    """The HTML page a link in an email opens: done, or (400) why not."""
    reason = "" if error is None else error.error
    page = request.app[EMAILS].templates.render(template, ok=error is None, reason=reason)
    return web.Response(text=page, status=200 if error is None else 400, content_type="text/html")


async def _request_token(request: web.Request, purpose: str) -> web.Response:
    body = await parse_body(request, RequestTokenBody)
    answer = await request.app[EMAILS].request_token(
        purpose,
        email=body.email,
        client_secret=body.client_secret,
        send_attempt=body.send_attempt,
        next_link=body.next_link,
        client_address=client_address(request),
        base_url=_base_url(request),
    )
    return ok(answer)


# POST /_matrix/client/v3/register/email/requestToken
@routes.post(V3 + "/register/email/requestToken")
async def register_request_token(request: web.Request) -> web.Response:
    return await _request_token(request, REGISTRATION)


# POST /_matrix/client/v3/account/password/email/requestToken
@routes.post(V3 + "/account/password/email/requestToken")
async def password_request_token(request: web.Request) -> web.Response:
    return await _request_token(request, PASSWORD_RESET)


# POST /_matrix/client/v3/account/3pid/email/requestToken
@routes.post(V3 + "/account/3pid/email/requestToken")
async def add_request_token(request: web.Request) -> web.Response:
    return await _request_token(request, ADD_THREEPID)


# GET /_linkchat/client/email/validate?sid=&client_secret=&token=  (the link in the email)
@routes.get(PAGES + "/validate")
async def validate_page(request: web.Request) -> web.Response:
    try:
        next_link = await request.app[EMAILS].submit_token(
            request.query.get("sid", ""),
            request.query.get("client_secret", ""),
            request.query.get("token", ""),
        )
    except MatrixError as error:
        return _page(request, "validation_page.html", error)
    if next_link:
        raise web.HTTPFound(next_link)
    return _page(request, "validation_page.html")


# POST /_linkchat/client/email/submit_token  (the response's submit_url; the code typed)
@routes.post(PAGES + "/submit_token")
async def submit_token(request: web.Request) -> web.Response:
    body = await parse_body(request, SubmitTokenBody)
    await request.app[EMAILS].submit_token(body.sid, body.client_secret, body.token)
    return ok({"success": True})


# GET /_linkchat/client/email/unsubscribe?user=&address=&token=  (in notification emails)
# POST /_linkchat/client/email/unsubscribe (RFC 8058 one-click, from a mail client's button)
@routes.get(PAGES + "/unsubscribe")
@routes.post(PAGES + "/unsubscribe")
async def unsubscribe_page(request: web.Request) -> web.Response:
    try:
        await request.app[EMAILS].unsubscribe(
            request.query.get("user", ""),
            request.query.get("address", ""),
            request.query.get("token", ""),
        )
    except MatrixError as error:
        return _page(request, "unsubscribe_page.html", error)
    return _page(request, "unsubscribe_page.html")


# GET /_matrix/client/v3/account/3pid
@routes.get(V3 + "/account/3pid")
async def list_threepids(request: web.Request) -> web.Response:
    caller = await requester(request)
    return ok({"threepids": await request.app[EMAILS].threepids(caller.user_id)})


# POST /_matrix/client/v3/account/3pid/add
@routes.post(V3 + "/account/3pid/add")
async def add_threepid(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await parse_body(request, AddBody)
    provided = body.model_dump(exclude_unset=True, exclude={"auth"})
    await request.app[EMAILS].add_with_auth(caller.user_id, provided, body.auth)
    return ok()


# POST /_matrix/client/v3/account/3pid/delete
@routes.post(V3 + "/account/3pid/delete")
async def delete_threepid(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await parse_body(request, DeleteBody)
    if not body.address:
        raise missing_param("address is required.")
    await request.app[EMAILS].delete(caller.user_id, body.medium, body.address)
    return ok({"id_server_unbind_result": "no-support"})
