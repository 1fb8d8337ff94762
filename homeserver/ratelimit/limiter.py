"""The rate limiter handlers and services call: which actions are limited, for whom, how much.

Each action class has its own bucket per key: a user ID for what a signed-in
user does, an IP address before login, the account being logged into for
login attempts. A request over its limit gets 429 M_LIMIT_EXCEEDED with
retry_after_ms and a Retry-After header (errors.limit_exceeded), raised
before the expensive work (password hashing, the append) starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Protocol

from homeserver.errors import limit_exceeded
from homeserver.ratelimit.buckets import Buckets, Limit


class Action(StrEnum):
    """An action class; the value is its key under `rate_limits` in the config."""

    MESSAGE = "message"  # events a user sends: messages, state, redactions
    ROOM_CREATION = "room_creation"
    JOIN = "join"
    INVITE = "invite"  # per inviter
    INVITE_RECIPIENT = "invite_recipient"  # per invited user
    LOGIN_ADDRESS = "login_address"  # login attempts per IP address
    LOGIN_ACCOUNT = "login_account"  # login attempts per account
    FAILED_LOGIN = "failed_login"  # wrong passwords per account
    REGISTRATION = "registration"  # accounts created per IP address
    THREEPID_TOKEN = "threepid_token"  # email/phone validation tokens requested
    MEDIA_UPLOAD_BYTES = "media_upload_bytes"  # bytes uploaded per user
    REPORT = "report"  # content reports per user
    KEY_QUERY = "key_query"  # POST /keys/query requests per user
    KEY_CLAIM = "key_claim"  # one-time keys asked for in POST /keys/claim, per user


# The actions an override of a user's rate (Synapse's override_ratelimit) applies to:
# what a requester does, counted in requests (not bytes, not another user's bucket).
OVERRIDABLE = frozenset(
    {Action.MESSAGE, Action.ROOM_CREATION, Action.JOIN, Action.INVITE, Action.REPORT}
)


class Exemptions(Protocol):
    """Who is never limited, and who has a limit of their own. Asked on every limited
    request, so it answers from memory."""

    def is_exempt(self, user_id: str) -> bool: ...

    def own_limit(self, user_id: str) -> Limit | None: ...


class ExemptUsers:
    """The server admins, and the users an admin exempted.

    Whoever stores who is an admin (admin.admins.ServerAdmins: the config's
    `admins` and those flagged through the admin API) calls `set_admins`, and
    whoever stores Synapse's `override_ratelimit` decisions `set_overridden`,
    each with the whole set at start-up and whenever it changes (in every
    process, on a bus message).
    """

    def __init__(self, admins: Iterable[str]) -> None:
        self._admins = frozenset(admins)
        self._overridden: frozenset[str] = frozenset()
        self._own_limits: Mapping[str, Limit] = {}

    def is_exempt(self, user_id: str) -> bool:
        return user_id in self._admins or user_id in self._overridden

    def set_admins(self, user_ids: Iterable[str]) -> None:
        self._admins = frozenset(user_ids)

    def set_overridden(self, user_ids: Iterable[str]) -> None:
        self._overridden = frozenset(user_ids)

    def own_limit(self, user_id: str) -> Limit | None:
        return self._own_limits.get(user_id)

    def set_own_limits(self, limits: Mapping[str, Limit]) -> None:
        """The users an admin gave a rate of their own (for the OVERRIDABLE actions)."""
        self._own_limits = dict(limits)


class RateLimiter:
    """Checks actions against their limits; `limits` None turns every limit off."""

    def __init__(
        self, limits: Mapping[Action, Limit] | None, buckets: Buckets, exemptions: Exemptions
    ) -> None:
        self._limits = dict(limits) if limits is not None else None
        self._buckets = buckets
        self._exemptions = exemptions

    @property
    def enabled(self) -> bool:
        return self._limits is not None

    async def start(self) -> None:
        await self._buckets.start()

    async def close(self) -> None:
        await self._buckets.close()

    async def limit(self, action: Action, key: str, cost: float = 1.0) -> None:
        """Take `cost` from `key`'s bucket for `action`, or raise 429 M_LIMIT_EXCEEDED.

        For keys that are not a signed-in requester (an IP address, the
        account a login names): nobody is exempt.
        """
        if self._limits is None:
            return
        wait = await self._buckets.take(f"{action}:{key}", self._limits[action], cost)
        if wait:
            raise limit_exceeded(wait)

    async def limit_user(
        self, action: Action, user_id: str, cost: float = 1.0, *, key: str | None = None
    ) -> None:
        """`limit` for what signed-in requester `user_id` does, unless they are exempt.

        The bucket is the requester's own, or `key`'s (an invite's recipient).
        """
        if self._limits is None or self._exemptions.is_exempt(user_id):
            return
        if key is None and action in OVERRIDABLE:
            own = self._exemptions.own_limit(user_id)
            if own is not None:
                wait = await self._buckets.take(f"{action}:{user_id}", own, cost)
                if wait:
                    raise limit_exceeded(wait)
                return
        await self.limit(action, user_id if key is None else key, cost)

    async def give_back(self, action: Action, key: str, cost: float = 1.0) -> None:
        """Return tokens taken for an attempt that turned out not to count."""
        if self._limits is None:
            return
        await self._buckets.take(f"{action}:{key}", self._limits[action], -cost, force=True)

    async def charge_user(self, action: Action, user_id: str, cost: float) -> None:
        """Take `cost` even beyond the budget, for a cost known only afterwards:
        the requester's next action waits until the debt is refilled."""
        if self._limits is None or self._exemptions.is_exempt(user_id):
            return
        await self._buckets.take(f"{action}:{user_id}", self._limits[action], cost, force=True)
