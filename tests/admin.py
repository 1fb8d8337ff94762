"""A server with a configured admin, as the admin API tests start it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from tests.conftest import AppFactory
from tests.matrix import MatrixClient, User

SERVER_NAME = "localhost"
NOT_ADMIN = {"errcode": "M_FORBIDDEN", "error": "You are not a server admin"}


@dataclass(frozen=True)
class AdminServer:
    hs: MatrixClient
    admin: User  # listed in the config's `admins`
    user: User  # an ordinary user


async def start_with_admin(start_app: AppFactory, dsn: str | None = None) -> AdminServer:
    localpart = "root_" + secrets.token_hex(5)
    hs = await start_app(dsn, admins=[f"@{localpart}:{SERVER_NAME}"])
    return AdminServer(hs, await hs.register(localpart), await hs.register())


async def assert_admins_only(
    hs: MatrixClient, user: User, method: str, path: str, body: object = None
) -> None:
    """Not logged in: 401 M_MISSING_TOKEN; an ordinary user: 403 M_FORBIDDEN, saying nothing."""
    anonymous = await hs.request(method, path, body)
    assert (anonymous.status, anonymous.errcode) == (401, "M_MISSING_TOKEN"), anonymous
    refused = await hs.request(method, path, body, user=user)
    assert (refused.status, refused.body) == (403, NOT_ADMIN), refused
