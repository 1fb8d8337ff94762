"""Registration tokens: what admins make (Synapse's /_synapse/admin/v1/registration_tokens),
the m.login.registration_token UIA stage at /register (registration.require_token), and
the spec's validity check.

A token's settings are a fact of the moderation chain (com.linkchat.admin.registration_token,
keyed by the token), each registration that used one is another (sent by the new user,
in one group with their account fact), so `completed` replays. `pending` counts the
UIA sessions, alive and not yet registered, in which the token was accepted (not in the
log: sessions are not): a token is never accepted beyond its `uses_allowed`.
"""

from __future__ import annotations

import re
import secrets
import string
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.accounts.uia import SESSION_LIFETIME_MS, Attempt, StageFailed
from homeserver.admin.audit import AuditTrail
from homeserver.errors import MatrixError, invalid_param, not_found
from homeserver.events import types
from homeserver.events.content.admin import TOKEN_PATTERN
from homeserver.events.model import Draft
from homeserver.store import registration_tokens as token_store
from homeserver.store.registration_tokens import TokenRow as TokenRow

REGISTRATION_TOKEN = "m.login.registration_token"
_ALPHABET = string.ascii_letters + string.digits + "._~-"
DEFAULT_LENGTH = 16


def _now_ms() -> int:
    return int(time.time() * 1000)


def _live_since() -> int:
    return _now_ms() - SESSION_LIFETIME_MS


def valid_token(token: str) -> bool:
    return re.fullmatch(TOKEN_PATTERN, token) is not None


def _usable(row: TokenRow, now: int) -> bool:
    if row.expiry_time is not None and row.expiry_time <= now:
        return False
    return row.uses_allowed is None or row.pending + row.completed < row.uses_allowed


@dataclass(eq=False)
class RegistrationTokens:
    pool: asyncpg.Pool
    trail: AuditTrail

    # The admin API

    async def tokens(self, valid: bool | None) -> list[TokenRow]:
        async with self.pool.acquire() as conn:
            return await token_store.tokens(conn, _live_since(), _now_ms(), valid)

    async def token(self, token: str) -> TokenRow:
        async with self.pool.acquire() as conn:
            row = await token_store.token(conn, token, _live_since())
        if row is None:
            raise not_found(f"No such registration token: {token}")
        return row

    async def _write(
        self, admin: str, action: str, token: str, content: dict[str, Any], reason: str | None
    ) -> None:
        await self.trail.record(
            admin,
            action,
            target=token,
            reason=reason,
            details=content or None,
            facts=[self.trail.fact(admin, types.REGISTRATION_TOKEN, content, state_key=token)],
        )

    async def create(
        self,
        admin: str,
        token: str | None,
        length: int,
        uses_allowed: int | None,
        expiry_time: int | None,
        reason: str | None,
    ) -> TokenRow:
        if token is None:
            if not 1 <= length <= 64:
                raise invalid_param("length must be an integer between 1 and 64")
            token = "".join(secrets.choice(_ALPHABET) for _ in range(length))
        elif not valid_token(token):
            raise invalid_param("token must consist only of characters matched by [A-Za-z0-9._~-]")
        if expiry_time is not None and expiry_time < _now_ms():
            raise invalid_param("expiry_time must not be in the past")
        async with self.pool.acquire() as conn:
            if await token_store.token(conn, token, _live_since()) is not None:
                raise MatrixError(400, "M_INVALID_PARAM", f"Token already exists: {token}")
        await self._write(
            admin,
            "registration_token.create",
            token,
            {"uses_allowed": uses_allowed, "expiry_time": expiry_time},
            reason,
        )
        return await self.token(token)

    async def update(
        self, admin: str, token: str, changes: Mapping[str, int | None], reason: str | None
    ) -> TokenRow:
        current = await self.token(token)
        expiry = changes.get("expiry_time")
        if expiry is not None and expiry < _now_ms():
            raise invalid_param("expiry_time must not be in the past")
        content = {
            "uses_allowed": changes.get("uses_allowed", current.uses_allowed),
            "expiry_time": changes.get("expiry_time", current.expiry_time),
        }
        await self._write(admin, "registration_token.update", token, content, reason)
        return await self.token(token)

    async def delete(self, admin: str, token: str, reason: str | None) -> None:
        await self.token(token)
        await self._write(admin, "registration_token.delete", token, {}, reason)

    # Registration

    async def is_valid(self, token: str) -> bool:
        """The spec's validity check: whether registering with `token` could succeed now."""
        if not valid_token(token):
            return False
        async with self.pool.acquire() as conn:
            row = await token_store.token(conn, token, _live_since())
        return row is not None and _usable(row, _now_ms())

    async def accept(self, token: str, session_id: str) -> bool:
        """Count a use of `token` as pending in the session, if it may be used: under the
        token's row lock, so two sessions never take its last use."""
        if not valid_token(token):
            return False
        async with self.pool.acquire() as conn, conn.transaction():
            await token_store.lock(conn, token)
            if await token_store.is_pending(conn, token, session_id):
                return True
            row = await token_store.token(conn, token, _live_since())
            if row is None or not _usable(row, _now_ms()):
                return False
            await token_store.add_pending(conn, token, session_id, _now_ms(), _live_since())
        return True

    async def drafts_for_new_account(self, user_id: str, results: Mapping[str, Any]) -> list[Draft]:
        """The use of the registration's token, appended with the new account's fact."""
        used = results.get(REGISTRATION_TOKEN)
        if not isinstance(used, dict) or not isinstance(used.get("token"), str):
            return []
        content = {"token": used["token"], "session": str(used.get("session", ""))}
        return [self.trail.fact(user_id, types.REGISTRATION_TOKEN_USED, content)]


class RegistrationTokenStage:
    """m.login.registration_token: `{"type", "token", "session"}`; the result names the
    token and the session, for the use recorded at registration."""

    type = REGISTRATION_TOKEN

    def __init__(self, tokens: RegistrationTokens) -> None:
        self._tokens = tokens

    def params(self) -> None:
        return None

    async def check(self, auth: Mapping[str, Any], attempt: Attempt) -> dict[str, str]:
        token = auth.get("token")
        if not isinstance(token, str) or not await self._tokens.accept(token, attempt.session_id):
            raise StageFailed("M_UNAUTHORIZED", "Invalid registration token")
        return {"token": token, "session": attempt.session_id}
