"""Accounts: registration, login, access tokens, devices and passwords."""

from __future__ import annotations

import hashlib
import secrets
import string
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from homeserver.accounts import passwords
from homeserver.accounts.identifiers import (
    check_localpart,
    check_not_reserved,
    invalid_username,
    localpart_of,
    user_id_for,
)
from homeserver.accounts.token_cache import CachedOwner, TokenCache
from homeserver.accounts.uia import (
    EMAIL_IDENTITY,
    PASSWORD,
    PasswordStage,
    RegistrationFlows,
    UiaIncomplete,
    UiaSession,
    UserInteractiveAuth,
)
from homeserver.bus.base import Bus
from homeserver.errors import MatrixError, forbidden, missing_param, not_found
from homeserver.events import types
from homeserver.events.model import Draft
from homeserver.log.appender import Appender
from homeserver.ratelimit.limiter import Action, RateLimiter
from homeserver.store import accounts as account_store
from homeserver.store import device_control as device_store

# What the device list shows of a device.
Device = account_store.DeviceRow


@dataclass(frozen=True, slots=True)
class Requester:
    """Who is calling: the user and device behind an access token."""

    user_id: str
    device_id: str
    token_hash: str


@dataclass(frozen=True, slots=True)
class Session:
    user_id: str
    device_id: str
    access_token: str | None


class Threepids(Protocol):
    """What the email capability (homeserver/email) lends accounts: addresses as
    identifiers, without accounts/ importing it."""

    async def user_for_address(self, medium: str, address: str) -> str | None: ...

    async def owner_of(self, results: Mapping[str, Any]) -> str | None: ...

    async def spend(self, results: Mapping[str, Any]) -> None: ...


class RegistrationFacts(Protocol):
    """A capability's facts about a new account, appended in one group with its account
    fact (a registration token's use, an email address's binding): `results` are what
    the registration's UIA stages proved."""

    async def drafts_for_new_account(
        self, user_id: str, results: Mapping[str, Any]
    ) -> list[Draft]: ...


@dataclass(frozen=True, slots=True)
class RegistrationPolicy:
    enabled: bool
    min_password_length: int
    password_hash_cost: int = passwords.DEFAULT_COST


TOKENS_REVOKED = "tokens.revoked"

REGISTER = "POST /register"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _account_draft(user_id: str) -> Draft:
    """The fact that a user account exists, made now (registration, or by an admin)."""
    return Draft(
        user_id,
        user_id,
        types.ACCOUNT,
        {"kind": "user", "created_ts": _now_ms(), "deactivated": False},
        state_key="",
    )


def _new_device_id() -> str:
    return "".join(secrets.choice(string.ascii_uppercase) for _ in range(10))


class AccountService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        appender: Appender,
        server_name: str,
        policy: RegistrationPolicy,
        bus: Bus,
        limiter: RateLimiter,
    ) -> None:
        self._pool = pool
        self._limiter = limiter
        self._appender = appender
        self._server_name = server_name
        self._policy = policy
        self.uia = UserInteractiveAuth(pool)
        self.uia.add_stage(PasswordStage(self.check_password))
        # Capabilities require or offer their stages here (email, registration tokens).
        self.registration_flows = RegistrationFlows()
        # ... and the facts they add to a new account (registration_facts.append).
        self.registration_facts: list[RegistrationFacts] = []
        self.threepids: Threepids | None = None
        self._bus = bus
        self._tokens = TokenCache()
        bus.subscribe(TOKENS_REVOKED, lambda message: self._tokens.evict(message.split(",")))

    # Registration

    def _user_id(self, username: str) -> str:
        """The user ID a client may register as `username` (also asked by /register/available)."""
        check_localpart(username, self._server_name)
        check_not_reserved(username)
        return user_id_for(username, self._server_name)

    async def _hash_password(self, password: str) -> str:
        return await passwords.hash_password(password, self._policy.password_hash_cost)

    async def username_available(self, username: str) -> bool:
        user_id = self._user_id(username)
        async with self._pool.acquire() as conn:
            if await account_store.user_exists(conn, user_id):
                raise MatrixError(400, "M_USER_IN_USE", "User ID already taken.")
        return True

    async def register(
        self, provided: Mapping[str, Any], auth: object, client_address: str
    ) -> Session:
        """POST /register: `provided` holds the body's parameters (username, password,
        device_id, initial_device_display_name, inhibit_login) that the client sent;
        a UIA session remembers them for its later requests, which may omit them."""
        if not self._policy.enabled:
            raise forbidden("Registration has been disabled.")
        params = dict(provided)
        password = params.pop("password", None)
        if isinstance(params.get("username"), str):
            # As Synapse: a capital in a requested username is lowered, not refused.
            params["username"] = params["username"].lower()
        session = await self.uia.open(REGISTER, auth, params)
        registered = session.data.get("user_id")
        username = session.params.get("username")
        if username is not None:
            user_id = self._user_id(username)
            if user_id != registered:
                async with self._pool.acquire() as conn:
                    if await account_store.user_exists(conn, user_id):
                        raise MatrixError(400, "M_USER_IN_USE", "User ID already taken.")
        if password is not None:
            self._check_strength(password)
        # Clients probe with POST {} to learn the flows (complement's "POST {} returns a
        # set of flows"), so a missing password is only an error after the 401.
        results = await self._complete_remembering(
            session, auth, self.registration_flows.flows(), password, client_address
        )
        inhibit_login = session.params.get("inhibit_login") is True
        device_id = session.params.get("device_id")
        display_name = session.params.get("initial_device_display_name")
        password_hash = session.data.get("password_hash")
        if password is not None and session.data.get("user_id") is None:
            password_hash = await self._hash_password(password)
        device = device_id if isinstance(device_id, str) else None
        name = display_name if isinstance(display_name, str) else None
        if session.stored:
            async with self.uia.exclusive(session) as data:
                # A registration retried within its session (its answer was lost) gets the
                # account the first one created, not M_USER_IN_USE or a second account.
                registered = data.get("user_id")
                if registered is None:
                    registered, device = await self._register_new(
                        username,
                        password_hash,
                        results,
                        client_address,
                        inhibit_login,
                        device,
                        name,
                    )
                    data.set("user_id", registered)
                elif not inhibit_login:
                    return await self._log_in(registered, device, name)
        else:
            # No session named (a one-request registration): nothing to retry within.
            registered, device = await self._register_new(
                username, password_hash, results, client_address, inhibit_login, device, name
            )
        if inhibit_login or device is None:
            return Session(registered, "", None)
        return Session(registered, device, await self._issue_token(registered, device))

    async def _register_new(
        self,
        username: str | None,
        password_hash: str | None,
        results: Mapping[str, Any],
        client_address: str,
        inhibit_login: bool,
        device_id: str | None,
        display_name: str | None,
    ) -> tuple[str, str | None]:
        """A new account, with its first device unless `inhibit_login`, in one append
        group: (user ID, device ID)."""
        if password_hash is None:
            raise missing_param("A password is required to register.")
        user_id = self._user_id(username or "u" + secrets.token_hex(6))
        # Counted here, not at the flows probe (POST {}) before it, as Synapse does.
        await self._limiter.limit(Action.REGISTRATION, client_address)
        device = None if inhibit_login else device_id or _new_device_id()
        first_device = (
            [self._device_draft(user_id, device, display_name, _now_ms())]
            if device is not None
            else []
        )
        await self._create_account(user_id, password_hash, results, first_device)
        return user_id, device

    async def _create_account(
        self,
        user_id: str,
        password_hash: str,
        results: Mapping[str, Any],
        devices: list[Draft],
    ) -> None:
        """Append the account (M_USER_IN_USE if the ID was taken meanwhile) and keep its
        password hash; `results` are what the registration's UIA stages proved, from which
        capabilities add their facts (`registration_facts`), in the same group: all or
        nothing."""
        drafts = [_account_draft(user_id), *devices]
        for source in self.registration_facts:
            drafts += await source.drafts_for_new_account(user_id, results)
        await self._appender.append_group(drafts)
        async with self._pool.acquire() as conn:
            await account_store.set_password_hash(conn, user_id, password_hash)

    def _check_strength(self, password: str) -> None:
        minimum = self._policy.min_password_length
        if minimum and len(password) < minimum:
            raise MatrixError(
                400, "M_WEAK_PASSWORD", f"Password must be at least {minimum} characters long."
            )

    @staticmethod
    def _device_draft(user_id: str, device_id: str, name: str | None, created_ts: int) -> Draft:
        content: dict[str, Any] = {"created_ts": created_ts}
        if name is not None:
            content["display_name"] = name
        return Draft(user_id, user_id, types.ACCOUNT_DEVICE, content, state_key=device_id)

    async def _issue_token(
        self, user_id: str, device_id: str, valid_until_ms: int | None = None
    ) -> str:
        token = "lc_" + secrets.token_urlsafe(32)
        async with self._pool.acquire() as conn:
            await account_store.insert_token(
                conn, hash_token(token), user_id, device_id, _now_ms(), valid_until_ms
            )
        return token

    # Login and tokens

    async def login_with_password(
        self,
        user: str,
        password: str,
        device_id: str | None,
        device_display_name: str | None,
    ) -> Session:
        await self._limiter.limit(Action.LOGIN_ACCOUNT, self._account_key(user))
        user_id = await self.check_password(user, password)
        return await self._log_in(user_id, device_id, device_display_name)

    async def login_with_threepid(
        self,
        medium: str,
        address: str,
        password: str,
        device_id: str | None,
        device_display_name: str | None,
    ) -> Session:
        """m.login.password with an m.id.thirdparty identifier (or the legacy top-level
        medium and address): the account holding the address, by its password."""
        await self._limiter.limit(Action.LOGIN_ACCOUNT, f"{medium}:{address.strip().casefold()}")
        user_id = (
            await self.threepids.user_for_address(medium, address)
            if self.threepids is not None
            else None
        )
        if user_id is None:
            # As for an unknown user: the same error, after the same work.
            await passwords.verify_password(password, None, self._policy.password_hash_cost)
            raise forbidden("Invalid username or password.")
        await self._limiter.limit(Action.LOGIN_ACCOUNT, user_id)
        user_id = await self.check_password(user_id, password)
        return await self._log_in(user_id, device_id, device_display_name)

    async def login_with_token(
        self, token: str, device_id: str | None, device_display_name: str | None
    ) -> Session:
        """m.login.token: a single-use, short-lived login token (a device agent's)."""
        async with self._pool.acquire() as conn:
            taken = await device_store.take_login_token(conn, hash_token(token))
            deactivated = await account_store.user_deactivated(conn, taken[0]) if taken else None
        # Taking the token used it up: a second login with it finds nothing.
        if taken is None or taken[1] <= _now_ms() or deactivated is not False:
            raise forbidden("Invalid, used or expired login token.")
        return await self._log_in(taken[0], device_id, device_display_name)

    async def _log_in(
        self, user_id: str, device_id: str | None, device_display_name: str | None
    ) -> Session:
        """A new access token on the device, which is created unless it exists."""
        device = device_id or _new_device_id()
        async with self._pool.acquire() as conn:
            existing = await account_store.device(conn, user_id, device)
        if existing is None:
            await self._appender.append(
                self._device_draft(user_id, device, device_display_name, _now_ms())
            )
        else:
            # The spec: logging in with an existing device ID invalidates its old tokens.
            await self._revoke_tokens(user_id, [device])
        token = await self._issue_token(user_id, device)
        return Session(user_id, device, token)

    async def end_sessions(self, user_id: str) -> None:
        """Log `user_id` out everywhere: every device removed, every access token dead."""
        async with self._pool.acquire() as conn:
            rows = await account_store.devices(conn, user_id)
        await self._remove_devices(user_id, [row.device_id for row in rows])
        # Tokens on no listed device (a server admin's support token) die too.
        async with self._pool.acquire() as conn:
            left = await account_store.device_ids_with_tokens(conn, user_id)
        await self._revoke_tokens(user_id, left)

    def _user_id_of(self, user: str) -> str | None:
        localpart = localpart_of(user, self._server_name)
        return user_id_for(localpart, self._server_name) if localpart else None

    def _account_key(self, user: str) -> str:
        """The key of the account-keyed login limits: the user ID, however it was spelled."""
        return self._user_id_of(user) or user.lower()

    async def check_password(self, user: str, password: str) -> str:
        """The user ID for `user` when `password` is right; M_FORBIDDEN otherwise.

        Every check takes a token from the account's failed_login bucket before
        hashing (429 when it is empty, even for the right password) and a right
        password gives it back: only wrong ones count, and guesses sent at once
        cannot overdraw it.
        """
        user_id = self._user_id_of(user)
        account = user_id or user.lower()
        await self._limiter.limit(Action.FAILED_LOGIN, account)
        async with self._pool.acquire() as conn:
            stored = await account_store.password_hash(conn, user_id) if user_id else None
            deactivated = await account_store.user_deactivated(conn, user_id) if user_id else None
        if deactivated and stored is None:
            # Deactivation deletes the password: the account says so whatever is typed,
            # as Synapse does.
            raise MatrixError(403, "M_USER_DEACTIVATED", "This account has been deactivated.")
        if not await passwords.verify_password(password, stored) or user_id is None:
            raise forbidden("Invalid username or password.")
        await self._limiter.give_back(Action.FAILED_LOGIN, account)
        if deactivated:
            raise MatrixError(403, "M_USER_DEACTIVATED", "This account has been deactivated.")
        return user_id

    async def requester_for_token(self, token: str) -> Requester:
        token_hash = hash_token(token)
        cached = self._tokens.get(token_hash)
        if cached is None:
            async with self._pool.acquire() as conn:
                owner = await account_store.token_owner(conn, token_hash)
            if owner is None or owner.deactivated:
                raise MatrixError(
                    401, "M_UNKNOWN_TOKEN", "Unrecognised access token.", soft_logout=False
                )
            cached = CachedOwner(owner.user_id, owner.device_id, owner.valid_until_ms)
            self._tokens.put(token_hash, cached)
        if cached.valid_until_ms is not None and cached.valid_until_ms <= _now_ms():
            raise MatrixError(
                401, "M_UNKNOWN_TOKEN", "Access token has expired.", soft_logout=False
            )
        return Requester(cached.user_id, cached.device_id, token_hash)

    async def logout(self, requester: Requester) -> None:
        await self._remove_devices(requester.user_id, [requester.device_id])

    async def logout_all(self, requester: Requester) -> None:
        async with self._pool.acquire() as conn:
            rows = await account_store.devices(conn, requester.user_id)
        await self._remove_devices(
            requester.user_id, [row.device_id for row in rows] + [requester.device_id]
        )

    async def _remove_devices(self, user_id: str, device_ids: list[str]) -> None:
        async with self._pool.acquire() as conn:
            known = {row.device_id for row in await account_store.devices(conn, user_id)}
        await self._revoke_tokens(user_id, device_ids)
        drafts = [
            Draft(user_id, user_id, types.ACCOUNT_DEVICE, {}, state_key=device_id)
            for device_id in dict.fromkeys(device_ids)
            if device_id in known
        ]
        if drafts:
            await self._appender.append_group(drafts)

    async def _revoke_tokens(self, user_id: str, device_ids: list[str]) -> None:
        revoked: list[str] = []
        async with self._pool.acquire() as conn:
            for device_id in device_ids:
                revoked += await account_store.delete_device_tokens(conn, user_id, device_id)
        if revoked:
            self._tokens.evict(revoked)
            await self._bus.publish(TOKENS_REVOKED, ",".join(revoked))

    # Password and devices

    async def require_password(
        self,
        requester: Requester,
        operation: str,
        auth: object,
        params: Mapping[str, Any] | None = None,
    ) -> UiaSession:
        """UIA with the account's password (m.login.password), or the 401 asking for it.

        `operation` is the request's method and path: the session cannot be used for
        another. The password must be the requester's own: another user's, right or
        not, in the requester's session is refused (403, as Synapse)."""
        session = await self.uia.open(operation, auth, params or {}, requester.user_id)
        results = await self.uia.complete(session, auth, [[PASSWORD]])
        if results.get(PASSWORD) != requester.user_id:
            raise forbidden("Invalid auth: the password must be the account's own.")
        await self.uia.finish(session)
        return session

    async def change_password(
        self, requester: Requester, provided: Mapping[str, Any], auth: object
    ) -> None:
        """POST /account/password: `provided` holds new_password and logout_devices when
        the client sent them; the session remembers them (the new password as a hash)."""
        await self._new_password(provided, auth, requester)

    async def reset_password(self, provided: Mapping[str, Any], auth: object) -> None:
        """POST /account/password without an access token: a forgotten password, reset
        by proving an email address of the account (m.login.email.identity)."""
        if self.threepids is None:
            raise MatrixError(401, "M_MISSING_TOKEN", "Missing access token.")
        await self._new_password(provided, auth, None)

    async def _new_password(
        self, provided: Mapping[str, Any], auth: object, requester: Requester | None
    ) -> None:
        """The password change (by the account's password) or reset (by an email address
        of the account); every other device is logged out unless logout_devices: false."""
        params = dict(provided)
        new_password = params.pop("new_password", None)
        if new_password is not None:
            self._check_strength(new_password)
        session = await self.uia.open(
            "POST /account/password", auth, params, requester.user_id if requester else None
        )
        flows = [[PASSWORD]] if requester is not None else [[EMAIL_IDENTITY]]
        results = await self._complete_remembering(session, auth, flows, new_password)
        if requester is not None:
            if results.get(PASSWORD) != requester.user_id:
                raise forbidden("Invalid auth: the password must be the account's own.")
            owner: str | None = requester.user_id
        else:
            assert self.threepids is not None
            owner = await self.threepids.owner_of(results)
        if owner is None:
            raise MatrixError(400, "M_THREEPID_NOT_FOUND", "No account has this email address.")
        user_id = owner
        if new_password is not None:
            password_hash = await self._hash_password(new_password)
        elif isinstance(session.data.get("password_hash"), str):
            password_hash = session.data["password_hash"]
        else:
            raise missing_param("new_password is required.")
        await self.uia.finish(session)
        kept = requester.device_id if requester is not None else None
        async with self._pool.acquire() as conn:
            await account_store.set_password_hash(conn, user_id, password_hash)
            others = [
                row.device_id
                for row in await account_store.devices(conn, user_id)
                if row.device_id != kept
            ]
        if requester is None and self.threepids is not None:
            # The email that reset it cannot reset it again.
            await self.threepids.spend(results)
        if session.params.get("logout_devices", True) is not False:
            await self._remove_devices(user_id, others)

    async def _complete_remembering(
        self,
        session: UiaSession,
        auth: object,
        flows: list[list[str]],
        password: str | None,
        client_address: str | None = None,
    ) -> dict[str, Any]:
        """`uia.complete`; on the 401, the session keeps the request's password as its
        hash, so a later request may leave it out (hashing costs a `login_address`
        token of `client_address` when given: a 401 is free otherwise)."""
        try:
            return await self.uia.complete(session, auth, flows)
        except UiaIncomplete:
            if password is not None and "password_hash" not in session.data:
                if client_address is not None:
                    await self._limiter.limit(Action.LOGIN_ADDRESS, client_address)
                await self.uia.remember(
                    session, {"password_hash": await self._hash_password(password)}
                )
            raise

    async def devices(self, requester: Requester) -> list[Device]:
        async with self._pool.acquire() as conn:
            return await account_store.devices(conn, requester.user_id)

    async def device(self, requester: Requester, device_id: str) -> Device:
        async with self._pool.acquire() as conn:
            row = await account_store.device(conn, requester.user_id, device_id)
        if row is None:
            raise not_found("Device not found.")
        return row

    async def rename_device(self, requester: Requester, device_id: str, name: str | None) -> None:
        row = await self.device(requester, device_id)
        await self._appender.append(
            self._device_draft(requester.user_id, device_id, name, row.created_ts)
        )

    async def delete_device(self, requester: Requester, device_id: str, auth: object) -> None:
        """DELETE /devices/{device_id}: 404 for a device the requester does not have."""
        await self.device(requester, device_id)
        await self.require_password(requester, f"DELETE /devices/{device_id}", auth)
        await self._remove_devices(requester.user_id, [device_id])

    async def delete_devices(
        self, requester: Requester, provided: Mapping[str, Any], auth: object
    ) -> None:
        """POST /delete_devices: `provided` holds the devices list when the client sent it."""
        session = await self.require_password(requester, "POST /delete_devices", auth, provided)
        device_ids = session.params.get("devices")
        if not isinstance(device_ids, list):
            raise missing_param("devices is required.")
        await self._remove_devices(requester.user_id, device_ids)

    # Administration (homeserver/admin): the same facts and secrets, without UIA.

    async def create_account(self, user_id: str, password: str | None) -> None:
        """An account a server admin makes: no registration policy, no UIA, no device;
        without a password until one is set. M_USER_IN_USE if the ID is taken."""
        localpart = localpart_of(user_id, self._server_name)
        if localpart is None or user_id_for(localpart, self._server_name) != user_id:
            raise invalid_username(f"{user_id!r} is not a user ID of this server.")
        check_localpart(localpart, self._server_name)
        check_not_reserved(localpart)
        password_hash = await self._hash_password(password) if password is not None else None
        await self._appender.append(_account_draft(user_id))
        if password_hash is not None:
            async with self._pool.acquire() as conn:
                await account_store.set_password_hash(conn, user_id, password_hash)

    async def set_password(self, user_id: str, new_password: str, *, logout_devices: bool) -> None:
        """A server admin sets `user_id`'s password; `logout_devices` ends every session."""
        password_hash = await self._hash_password(new_password)
        async with self._pool.acquire() as conn:
            await account_store.set_password_hash(conn, user_id, password_hash)
        if logout_devices:
            await self.end_sessions(user_id)

    async def forget_password(self, user_id: str) -> None:
        """The account has no password any more (deactivation): no login by password."""
        async with self._pool.acquire() as conn:
            await account_store.delete_password_hash(conn, user_id)

    async def user_devices(self, user_id: str) -> list[Device]:
        async with self._pool.acquire() as conn:
            return await account_store.devices(conn, user_id)

    async def support_token(self, user_id: str, valid_until_ms: int | None) -> str:
        """An access token for a server admin to act as `user_id` (support): on a device of
        its own that is not in the user's device list; it dies at `valid_until_ms` (if
        given), at /logout with it, or with the account."""
        return await self._issue_token(user_id, "ADMIN_" + _new_device_id(), valid_until_ms)

    async def rename_user_device(self, user_id: str, device_id: str, name: str | None) -> None:
        """A server admin renames one of `user_id`'s devices (404 for an unknown one)."""
        async with self._pool.acquire() as conn:
            row = await account_store.device(conn, user_id, device_id)
        if row is None:
            raise not_found("No device found")
        await self._appender.append(self._device_draft(user_id, device_id, name, row.created_ts))

    async def remove_devices(self, user_id: str, device_ids: list[str]) -> None:
        """The devices are removed and their access tokens die (for a server admin)."""
        await self._remove_devices(user_id, device_ids)
