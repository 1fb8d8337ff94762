"""User-interactive authentication (UIA): flows, sessions and the 401 that lists them."""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import asyncpg

from homeserver.errors import MatrixError
from homeserver.store import accounts as account_store

DUMMY = "m.login.dummy"
PASSWORD = "m.login.password"
SESSION_LIFETIME_MS = 30 * 60 * 1000

# Checks the password stage for a user; returns True when the password is right.
PasswordCheck = Callable[[Mapping[str, Any]], Awaitable[bool]]


class UserInteractiveAuth:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def require(
        self,
        auth: object,
        stages: Sequence[str],
        check_password: PasswordCheck | None = None,
    ) -> None:
        """Pass when `auth` completes the single-stage flow `stages`, else raise the 401."""
        now = int(time.time() * 1000)
        if not isinstance(auth, dict) or not auth:
            raise await self._challenge(stages, now)
        session = auth.get("session")
        stage = auth.get("type")
        if stage not in stages:
            raise await self._challenge(
                stages, now, session, "M_UNRECOGNIZED", f"Unknown auth type {stage!r}."
            )
        if stage == PASSWORD:
            if check_password is None or not await check_password(auth):
                raise await self._challenge(
                    stages, now, session, "M_FORBIDDEN", "Invalid username or password."
                )
        if isinstance(session, str):
            async with self._pool.acquire() as conn:
                await account_store.delete_uia_session(conn, session)

    async def _challenge(
        self,
        stages: Sequence[str],
        now: int,
        session: object = None,
        errcode: str | None = None,
        error: str | None = None,
    ) -> MatrixError:
        async with self._pool.acquire() as conn:
            known = isinstance(session, str) and await account_store.uia_session_exists(
                conn, session, now - SESSION_LIFETIME_MS
            )
            if not known:
                session = secrets.token_urlsafe(18)
                await account_store.delete_stale_uia_sessions(conn, now - SESSION_LIFETIME_MS)
                await account_store.create_uia_session(conn, str(session), now, "{}")
        extra: dict[str, object] = {
            "flows": [{"stages": list(stages)}],
            "params": {},
            "session": session,
        }
        if errcode is None:
            return MatrixError(401, "", "Additional authentication required.", **extra)
        return MatrixError(401, errcode, error or "", **extra)
