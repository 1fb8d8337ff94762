"""Email addresses as identifiers (the spec's 3PID API): validation, binding, removal.

- `request_token` sends a validation email (a link to the server's validation
  page and a short code) for one purpose: sign-up, password reset, adding an
  address. The same client_secret, address and send_attempt give the same sid
  and send nothing the second time; a refused or unreachable mail server
  leaves no session behind and gives the client a clear error.
- The token is single-use, expires (`email.token_lifetime_seconds`) and dies
  after five wrong tries; it is stored as its sha256.
- `EmailIdentityStage` is the UIA stage m.login.email.identity: it passes for a
  validated session of the operation's purpose.
- A binding is a fact in the owner's account chain holding the address's
  keyed hash; the address is kept in a secret table and erased on removal
  (see migrations/0032_email.sql and the README).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import asyncpg

from homeserver.accounts.service import AccountService
from homeserver.accounts.uia import EMAIL_IDENTITY, PASSWORD, Attempt, StageFailed
from homeserver.email.addresses import MEDIUM, address_hash, domain_of, normalise
from homeserver.email.mailer import Mailer, MailNotSent
from homeserver.email.rules import in_use
from homeserver.email.templates import Templates
from homeserver.errors import MatrixError, forbidden, invalid_param, unknown
from homeserver.events import types
from homeserver.events.model import Draft
from homeserver.log.appender import Appender
from homeserver.ratelimit.limiter import Action, RateLimiter
from homeserver.store import email_notifications as notification_store
from homeserver.store import threepids as store

log = logging.getLogger(__name__)

REGISTRATION = "registration"
PASSWORD_RESET = "password_reset"
ADD_THREEPID = "add_threepid"
# The purpose a validation must have been requested for, by the UIA operation.
_PURPOSE_OF_OPERATION = {
    "POST /register": REGISTRATION,
    "POST /account/password": PASSWORD_RESET,
    "POST /account/3pid/add": ADD_THREEPID,
}
MAX_TOKEN_FAILURES = 5
# An address kept for a binding whose append failed (a sign-up refused) is swept this
# long after: far longer than an append takes, so none in flight loses its address.
UNBOUND_GRACE_MS = 10 * 60 * 1000
# A session (validated or not) is forgotten a day after it was made.
VALIDATION_KEPT_MS = 24 * 60 * 60 * 1000
_CLIENT_SECRET = re.compile(r"[0-9a-zA-Z.=_\-]{1,255}")
# Codes typed by hand: no 0/O, 1/I/L. 8 characters of 32: 2^40.
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
_CODE_LENGTH = 8
_HASH_KEY = "threepid_hash_key"
_UNSUBSCRIBE_KEY = "email_unsubscribe_key"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _token_hash(token: str) -> str:
    # Codes are typed by hand: compared without case or spaces.
    return hashlib.sha256("".join(token.split()).upper().encode()).hexdigest()


def auth_failed(reason: str) -> MatrixError:
    return MatrixError(400, "M_THREEPID_AUTH_FAILED", reason)


def denied(reason: str = "This email address is not allowed on this server.") -> MatrixError:
    return MatrixError(403, "M_THREEPID_DENIED", reason)


@dataclass(frozen=True, slots=True)
class EmailSettings:
    token_lifetime_ms: int
    registration_enabled: bool
    require_email: str  # required | optional | off
    allowed_domains: tuple[str, ...]
    inhibit_errors: bool
    public_baseurl: str


@dataclass(frozen=True, slots=True)
class Proof:
    """An address a validation session proved (what the UIA stage records)."""

    medium: str
    address: str
    address_hash: str
    validated_ts: int


@dataclass(eq=False)
class EmailService:
    pool: asyncpg.Pool
    appender: Appender
    accounts: AccountService
    mailer: Mailer
    templates: Templates
    limiter: RateLimiter
    settings: EmailSettings
    # The server's address-hashing key, read once.
    _key: bytes | None = field(default=None, init=False, repr=False)

    @property
    def public_baseurl(self) -> str:
        return self.settings.public_baseurl

    # --- email pushers ------------------------------------------------------------------

    async def pushkey_for(self, user_id: str, address: str) -> str:
        """An email pusher's pushkey: the address, normalised, if it is the user's own."""
        normalised = normalise(address)
        async with self.pool.acquire() as conn:
            owner = await store.owner(conn, MEDIUM, await self.hash_of(normalised))
        if owner != user_id:
            raise MatrixError(
                400, "M_THREEPID_NOT_FOUND", "An email pusher's pushkey must be your own address."
            )
        return normalised

    async def unsubscribe_token(self, user_id: str, address: str) -> str:
        """What the unsubscribe link carries: only the server can make it, so the link
        works without logging in and for nobody else's address."""
        async with self.pool.acquire() as conn:
            key = await store.server_secret(conn, _UNSUBSCRIBE_KEY)
        return hmac.new(key, f"{user_id}\0{address}".encode(), hashlib.sha256).hexdigest()

    async def unsubscribe(self, user_id: str, address: str, token: str) -> None:
        """Stop the email notifications of `user_id` to `address` (the link in them)."""
        expected = await self.unsubscribe_token(user_id, address)
        if not hmac.compare_digest(expected, token):
            raise auth_failed("This unsubscribe link is not valid.")
        async with self.pool.acquire() as conn:
            await notification_store.delete_email_pushers(conn, user_id, address)

    async def hash_of(self, address: str) -> str:
        if self._key is None:
            async with self.pool.acquire() as conn:
                self._key = await store.server_secret(conn, _HASH_KEY)
        return address_hash(self._key, MEDIUM, address)

    def _allowed(self, address: str) -> bool:
        domains = self.settings.allowed_domains
        return not domains or domain_of(address) in domains

    # --- requestToken ------------------------------------------------------------------

    async def request_token(
        self,
        purpose: str,
        *,
        email: str,
        client_secret: str,
        send_attempt: int,
        next_link: str | None,
        client_address: str,
        base_url: str,
    ) -> dict[str, Any]:
        if not _CLIENT_SECRET.fullmatch(client_secret):
            raise invalid_param("client_secret may only hold 1-255 of [0-9a-zA-Z.=_-].")
        if next_link is not None and urlsplit(next_link).scheme not in ("http", "https"):
            raise invalid_param("next_link must be an http(s) URL.")
        address = normalise(email)
        if purpose == REGISTRATION and not self.settings.registration_enabled:
            raise forbidden("Registration has been disabled.")
        if purpose == REGISTRATION and self.settings.require_email == "off":
            raise denied("This server does not register accounts by email.")
        if purpose != PASSWORD_RESET and not self._allowed(address):
            raise denied()
        hashed = await self.hash_of(address)
        async with self.pool.acquire() as conn:
            owner = await store.owner(conn, MEDIUM, hashed)
            existing = await store.validation_for(conn, client_secret, MEDIUM, hashed, purpose)
        refusal: MatrixError | None = None
        if purpose == PASSWORD_RESET and owner is None:
            refusal = MatrixError(400, "M_THREEPID_NOT_FOUND", "No account has this email address.")
        elif purpose != PASSWORD_RESET and owner is not None:
            refusal = in_use()
        if refusal is not None:
            if not self.settings.inhibit_errors:
                raise refusal
            # Looks like a session was made and an email sent: nothing tells who has an
            # account. The sid leads nowhere.
            await self.limiter.limit(Action.THREEPID_TOKEN, f"ip:{client_address}")
            return {"sid": secrets.token_urlsafe(18)}
        if existing is not None and send_attempt <= existing.send_attempt:
            return self._answer(existing.sid, base_url)  # the same attempt: no second email
        # Only what sends an email counts: per address (nobody's inbox is flooded) and
        # per client address.
        await self.limiter.limit(Action.THREEPID_TOKEN, f"address:{hashed}")
        await self.limiter.limit(Action.THREEPID_TOKEN, f"ip:{client_address}")
        sid = existing.sid if existing is not None else secrets.token_urlsafe(18)
        code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LENGTH))
        now = _now_ms()
        expires = now + self.settings.token_lifetime_ms
        async with self.pool.acquire() as conn:
            await store.delete_stale_validations(conn, now - VALIDATION_KEPT_MS)
            await store.erase_unbound_addresses(conn, now - UNBOUND_GRACE_MS)
            if existing is None:
                claimed = await store.create_validation(
                    conn,
                    sid=sid,
                    client_secret=client_secret,
                    medium=MEDIUM,
                    address=address,
                    address_hash=hashed,
                    purpose=purpose,
                    send_attempt=send_attempt,
                    next_link=next_link,
                    token_hash=_token_hash(code),
                    token_expires_ts=expires,
                    now_ms=now,
                )
            else:
                claimed = await store.claim_send(
                    conn, sid, send_attempt, next_link, _token_hash(code), expires
                )
            if not claimed:
                # The same request, made at once: the other one sends the email.
                again = await store.validation_for(conn, client_secret, MEDIUM, hashed, purpose)
                if again is None:
                    raise unknown("The validation session changed meanwhile; try again.", 409)
                return self._answer(again.sid, base_url)
        link = f"{base_url}/_linkchat/client/email/validate?" + urlencode(
            {"sid": sid, "client_secret": client_secret, "token": code}
        )
        email_message = self.templates.email(
            "validation",
            address,
            purpose=purpose,
            link=link,
            code=code,
            lifetime_minutes=self.settings.token_lifetime_ms // 60_000,
        )
        try:
            await self.mailer.send(email_message)
        except MailNotSent:
            async with self.pool.acquire() as conn:
                await store.undo_send(conn, existing, sid)
            raise MatrixError(
                500,
                "M_UNKNOWN",
                "The email could not be sent: the mail server refused it or could not be"
                " reached. Nothing was changed; try again later.",
            ) from None
        return self._answer(sid, base_url)

    @staticmethod
    def _answer(sid: str, base_url: str) -> dict[str, Any]:
        return {"sid": sid, "submit_url": f"{base_url}/_linkchat/client/email/submit_token"}

    # --- the token ---------------------------------------------------------------------

    async def submit_token(self, sid: str, client_secret: str, token: str) -> str | None:
        """Validate a session with its token (from the link or typed); returns its
        next_link. M_THREEPID_AUTH_FAILED with the reason otherwise."""
        now = _now_ms()
        async with self.pool.acquire() as conn:
            session = await store.validation(conn, sid)
            if session is None or not hmac.compare_digest(session.client_secret, client_secret):
                raise auth_failed("This validation link or code is unknown; ask for a new email.")
            if session.validated_ts is not None and session.token_hash is None:
                raise auth_failed("This link or code was already used.")
            if session.token_hash is None:
                raise auth_failed("Too many wrong codes; ask for a new email.")
            if session.token_expires_ts <= now:
                raise auth_failed("This link or code has expired; ask for a new email.")
            if not hmac.compare_digest(session.token_hash, _token_hash(token)):
                await store.count_failure(conn, sid, MAX_TOKEN_FAILURES)
                raise auth_failed("This code is not the one in the email.")
            if not await store.mark_validated(conn, sid, session.token_hash, now):
                raise auth_failed("This link or code was already used.")
        return session.next_link

    # --- the UIA stage and what accounts ask --------------------------------------------

    async def proof(self, sid: object, client_secret: object, purpose: str) -> Proof:
        """The address a validated session of `purpose` proved, or M_THREEPID_AUTH_FAILED."""
        if not isinstance(sid, str) or not isinstance(client_secret, str):
            raise auth_failed("sid and client_secret are required.")
        async with self.pool.acquire() as conn:
            session = await store.validation(conn, sid)
        if (
            session is None
            or not hmac.compare_digest(session.client_secret, client_secret)
            or session.purpose != purpose
        ):
            raise auth_failed("No validation session matches sid and client_secret.")
        if session.validated_ts is None:
            raise auth_failed("The email address has not been validated yet.")
        return Proof(session.medium, session.address, session.address_hash, session.validated_ts)

    async def proof_of(self, results: Mapping[str, Any]) -> Proof | None:
        """The address the UIA stage m.login.email.identity proved in `results`, if any."""
        result = results.get(EMAIL_IDENTITY)
        if not isinstance(result, dict):
            return None
        async with self.pool.acquire() as conn:
            session = await store.validation(conn, str(result.get("sid")))
        if session is None or session.address_hash != result.get("address_hash"):
            raise auth_failed("The validation session has expired; validate the address again.")
        return Proof(
            session.medium, session.address, session.address_hash, session.validated_ts or 0
        )

    async def user_for_address(self, medium: str, address: str) -> str | None:
        if medium != MEDIUM:
            return None
        try:
            normalised = normalise(address)
        except MatrixError:
            return None
        async with self.pool.acquire() as conn:
            return await store.owner(conn, MEDIUM, await self.hash_of(normalised))

    async def owner_of(self, results: Mapping[str, Any]) -> str | None:
        """The account holding the address the UIA proved (a password reset)."""
        proof = await self.proof_of(results)
        if proof is None:
            return None
        async with self.pool.acquire() as conn:
            return await store.owner(conn, proof.medium, proof.address_hash)

    async def spend(self, results: Mapping[str, Any]) -> None:
        """The validation the UIA used is used up (a password reset)."""
        result = results.get(EMAIL_IDENTITY)
        if isinstance(result, dict) and isinstance(result.get("sid"), str):
            async with self.pool.acquire() as conn:
                await store.delete_validation(conn, result["sid"])

    async def drafts_for_new_account(self, user_id: str, results: Mapping[str, Any]) -> list[Draft]:
        """The binding of the address a sign-up proved, appended with the account."""
        proof = await self.proof_of(results)
        if proof is None:
            return []
        if not self._allowed(proof.address):
            raise denied()
        return [await self._bind(user_id, proof)]

    async def _bind(self, user_id: str, proof: Proof) -> Draft:
        # Kept before the binding is appended; a refused append leaves a row that the
        # next requestToken sweeps once UNBOUND_GRACE_MS has passed (or one whose hash
        # another account holds: the same address).
        async with self.pool.acquire() as conn:
            await store.keep_address(
                conn, proof.medium, proof.address_hash, proof.address, _now_ms()
            )
        return Draft(
            user_id,
            user_id,
            types.ACCOUNT_THREEPID,
            {"medium": proof.medium, "validated_ts": proof.validated_ts, "added_ts": _now_ms()},
            state_key=proof.address_hash,
        )

    # --- GET /account/3pid, add, delete ---------------------------------------------------

    async def threepids(self, user_id: str) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            rows = await store.bindings(conn, user_id)
        return [
            {
                "medium": row.medium,
                "address": row.address,
                "validated_at": row.validated_ts,
                "added_at": row.added_ts,
            }
            for row in rows
            if row.address is not None
        ]

    async def add_with_auth(self, user_id: str, provided: Mapping[str, Any], auth: object) -> None:
        """POST /account/3pid/add: the account's password (UIA), and the address proved
        by the validated session the body names (sid, client_secret), or, without
        them, by the UIA stage m.login.email.identity."""
        uia = self.accounts.uia
        session = await uia.open("POST /account/3pid/add", auth, provided, user_id)
        by_body = "sid" in session.params
        flows = [[PASSWORD]] if by_body else [[PASSWORD, EMAIL_IDENTITY]]
        results = await uia.complete(session, auth, flows)
        if results.get(PASSWORD) != user_id:
            raise forbidden("Invalid auth: the password must be the account's own.")
        if by_body:
            proof = await self.proof(
                session.params.get("sid"), session.params.get("client_secret"), ADD_THREEPID
            )
        else:
            found = await self.proof_of(results)
            if found is None:
                raise auth_failed("No validated email address.")
            proof = found
        await uia.finish(session)
        await self.add(user_id, proof)

    async def add(self, user_id: str, proof: Proof) -> None:
        if not self._allowed(proof.address):
            raise denied()
        draft = await self._bind(user_id, proof)
        try:
            await self.appender.append(draft)
        except MatrixError:
            async with self.pool.acquire() as conn:
                await store.erase_address(conn, proof.address_hash)  # unless bound
            raise
        async with self.pool.acquire() as conn:
            # Used: the same validation cannot add the address again after a removal.
            await store.erase_validations(conn, proof.medium, proof.address_hash)

    async def delete(self, user_id: str, medium: str, address: str) -> None:
        if medium != MEDIUM:
            raise invalid_param(f"Unsupported medium {medium!r}.")
        normalised = normalise(address)
        hashed = await self.hash_of(normalised)
        async with self.pool.acquire() as conn:
            owner = await store.owner(conn, MEDIUM, hashed)
        if owner == user_id:
            await self.appender.append(
                Draft(user_id, user_id, types.ACCOUNT_THREEPID, {}, state_key=hashed)
            )
        async with self.pool.acquire() as conn:
            await store.erase_address(conn, hashed)
            # Its email pushers go with it (their pushkey is the address), as in Synapse.
            await notification_store.delete_email_pushers(conn, user_id, normalised)

    async def bindings(self, user_id: str) -> list[store.Binding]:
        async with self.pool.acquire() as conn:
            return await store.bindings(conn, user_id)

    async def replace_bindings(self, user_id: str, wanted: list[tuple[str, str]]) -> None:
        """An admin's PUT: `user_id` holds exactly `wanted` (normalised (medium, address)
        pairs), in one append group: all of it, or nothing and M_THREEPID_IN_USE."""
        now = _now_ms()
        hashes = {
            await self._hash(medium, address): (medium, address) for medium, address in wanted
        }
        async with self.pool.acquire() as conn:
            held_rows = {row.address_hash: row for row in await store.bindings(conn, user_id)}
            held = set(held_rows)
            for hashed, (medium, address) in hashes.items():
                if hashed not in held:
                    await store.keep_address(conn, medium, hashed, address, now)
        drafts = [
            Draft(user_id, user_id, types.ACCOUNT_THREEPID, {}, state_key=hashed)
            for hashed in sorted(held - hashes.keys())
        ] + [
            Draft(
                user_id,
                user_id,
                types.ACCOUNT_THREEPID,
                {"medium": medium, "validated_ts": now, "added_ts": now},
                state_key=hashed,
            )
            for hashed, (medium, _address) in hashes.items()
            if hashed not in held
        ]
        try:
            if drafts:
                await self.appender.append_group(drafts)
        finally:
            async with self.pool.acquire() as conn:
                # What was removed, and what was kept for a refused append (unless bound).
                for hashed in held ^ hashes.keys():
                    await store.erase_address(conn, hashed)
                for hashed in held - hashes.keys():
                    if (gone := held_rows[hashed].address) is not None:
                        await notification_store.delete_email_pushers(conn, user_id, gone)

    async def adopt_admin_threepids(self) -> None:
        """Move what the admin API stored outside the log before this capability (the
        table of migration 0023) into bindings; each row is deleted once moved."""
        async with self.pool.acquire() as conn:
            rows = await store.legacy_admin_threepids(conn)
        by_user: dict[str, list[tuple[str, str]]] = {}
        for row in rows:
            by_user.setdefault(row["user_id"], []).append((row["medium"], row["address"]))
        for user_id, pairs in by_user.items():
            current = [
                (row.medium, row.address)
                for row in await self.bindings(user_id)
                if row.address is not None
            ]
            try:
                await self.replace_bindings(user_id, list(dict.fromkeys([*current, *pairs])))
            except MatrixError as refused:
                log.warning("admin threepids of %s not moved: %s", user_id, refused.error)
                continue
            async with self.pool.acquire() as conn:
                for medium, address in pairs:
                    await store.forget_legacy_admin_threepid(conn, medium, address)

    async def _hash(self, medium: str, address: str) -> str:
        if self._key is None:
            await self.hash_of("")
        assert self._key is not None
        return address_hash(self._key, medium, address)


class EmailIdentityStage:
    """UIA m.login.email.identity: `threepid_creds` {sid, client_secret} of a session
    validated for the operation's purpose. The result is the session and address hash
    (never the address: UIA sessions are not where an erased address may linger)."""

    type = EMAIL_IDENTITY

    def __init__(self, emails: EmailService) -> None:
        self._emails = emails

    def params(self) -> None:
        return None

    async def check(self, auth: Mapping[str, Any], attempt: Attempt) -> dict[str, Any]:
        creds = auth.get("threepid_creds", auth.get("threepidCreds"))
        if not isinstance(creds, dict):
            raise StageFailed("M_MISSING_PARAM", "threepid_creds {sid, client_secret} is required.")
        purpose = _PURPOSE_OF_OPERATION.get(attempt.operation)
        if purpose is None:
            raise StageFailed("M_UNRECOGNIZED", "Email validation does not authorise this.")
        try:
            proof = await self._emails.proof(creds.get("sid"), creds.get("client_secret"), purpose)
        except MatrixError as error:
            raise StageFailed(error.errcode, error.error) from None
        return {
            "medium": proof.medium,
            "sid": creds["sid"],
            "address_hash": proof.address_hash,
            "validated_ts": proof.validated_ts,
        }
