"""What every admin API handler parses first: the caller, who must be a server admin,
the user the path names, the `reason` a body may carry, and the boolean query
parameters of the Synapse Admin API's lists (integers: requests.int_param).

`admin_requester` runs before anything the request names is looked up: a caller
without a token gets 401 M_MISSING_TOKEN (M_UNKNOWN_TOKEN for a bad one) as on
every endpoint, anyone but a server admin 403 M_FORBIDDEN with the same message
whatever the path names, so the answer tells a non-admin nothing.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import StrictStr

from homeserver.accounts.service import Requester
from homeserver.api.app_keys import SERVER_ADMINS
from homeserver.api.requests import RequestBody, parse_body, requester, user_id_param
from homeserver.errors import invalid_param


async def admin_requester(request: web.Request) -> Requester:
    """The caller, who must be a server admin (403 M_FORBIDDEN otherwise)."""
    caller = await requester(request)
    await request.app[SERVER_ADMINS].require_admin(caller.user_id)
    return caller


async def admin_on_user(request: web.Request) -> tuple[Requester, str]:
    """The caller, who must be a server admin, and the `{user_id}` of the path (checked
    after the caller, so a non-admin learns nothing from it)."""
    caller = await admin_requester(request)
    return caller, user_id_param(request)


class AdminBody(RequestBody):
    """What every admin API body may carry: ours, why, for the audit trail (Synapse's
    clients send none)."""

    reason: StrictStr | None = None


async def admin_reason(request: web.Request) -> str | None:
    """The `reason` of a body that needs nothing else, and may be empty or absent."""
    return (await parse_body(request, AdminBody, empty_ok=True)).reason


def bool_param(request: web.Request, name: str, default: bool | None) -> bool | None:
    """`true` or `false` (`default` when absent), as Synapse reads its boolean parameters."""
    raw = request.query.get(name)
    if raw is None:
        return default
    if raw not in ("true", "false"):
        raise invalid_param(f"Query parameter {name!r} must be 'true' or 'false'.")
    return raw == "true"


def forwards_param(request: web.Request, default: str) -> bool:
    """`dir`: `f` (forwards) or `b` (backwards), `default` when absent; True for forwards."""
    direction = request.query.get("dir", default)
    if direction not in ("f", "b"):
        raise invalid_param("Query parameter 'dir' must be 'f' or 'b'.")
    return direction == "f"
