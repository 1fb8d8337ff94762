"""User-interactive authentication (UIA): stages, flows, sessions and the 401 that lists them.

A session (the spec's `auth.session`) belongs to one operation, the request's
method and path: it cannot be carried over to another (403). It remembers the
parameters of its requests, so a client may complete it with later requests
that carry only `auth`, and the result of each stage completed, so a flow of
several stages may be completed one request at a time (Synapse's
`check_ui_auth`, synapse/handlers/auth.py).

A stage is a small object with a `type` and an async `check` (`Stage`); a
capability adds its own (`UserInteractiveAuth.add_stage`) and, for
registration, requires or offers it (`RegistrationFlows`), without editing
this module.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg

from homeserver.errors import MatrixError, forbidden
from homeserver.store import uia_sessions as store

DUMMY = "m.login.dummy"
PASSWORD = "m.login.password"
# Added by the email capability (homeserver/email); named here for the flows that use it.
EMAIL_IDENTITY = "m.login.email.identity"
# Long enough to fetch a validation email and come back (its token lives an hour).
SESSION_LIFETIME_MS = 60 * 60 * 1000

Flow = Sequence[str]


def _now_ms() -> int:
    return int(time.time() * 1000)


class StageFailed(Exception):
    """A stage refused what the client sent: the 401 names the error, the client may retry."""

    def __init__(self, errcode: str, error: str) -> None:
        super().__init__(error)
        self.errcode = errcode
        self.error = error


@dataclass(frozen=True, slots=True)
class Attempt:
    """What a stage may look at besides its `auth` dict."""

    session_id: str
    operation: str
    user_id: str | None  # the requester, None before login (registration, password reset)
    params: Mapping[str, Any]


class Stage(Protocol):
    """One UIA stage. `check` returns what the stage proved (JSON: the user a password
    names, the address an email validated), recorded in the session; it raises
    `StageFailed` for a wrong answer, or any MatrixError (429) to stop the request."""

    @property
    def type(self) -> str: ...

    def params(self) -> Mapping[str, Any] | None: ...

    async def check(self, auth: Mapping[str, Any], attempt: Attempt) -> Any: ...


class DummyStage:
    type = DUMMY

    def params(self) -> None:
        return None

    async def check(self, auth: Mapping[str, Any], attempt: Attempt) -> bool:
        return True


# Checks a password for a user (as the client spelled it); returns the user ID, or
# raises MatrixError (M_FORBIDDEN for a wrong one, 429 for too many wrong ones).
PasswordCheck = Callable[[str, str], Awaitable[str]]


class PasswordStage:
    """m.login.password: the password of the user the identifier names, the requester by
    default. The result is the user ID; the operation decides whether that user may
    do it (another user's right password in one's own session is a 403, as Synapse)."""

    type = PASSWORD

    def __init__(self, check: PasswordCheck) -> None:
        self._check = check

    def params(self) -> None:
        return None

    async def check(self, auth: Mapping[str, Any], attempt: Attempt) -> str:
        identifier = auth.get("identifier")
        if isinstance(identifier, dict):
            user = identifier.get("user") if identifier.get("type") == "m.id.user" else None
        else:
            user = auth.get("user", attempt.user_id)
        password = auth.get("password")
        if not isinstance(user, str) or not isinstance(password, str):
            raise StageFailed("M_FORBIDDEN", "Invalid username or password.")
        try:
            return await self._check(user, password)
        except MatrixError as error:
            if error.status == 429:
                raise  # too many wrong passwords: wait, not another 401 to retype
            raise StageFailed(error.errcode, error.error) from None


class RegistrationFlows:
    """The flows `register` offers, from the stages capabilities require or offer.

    A required stage is in every flow (a registration token); an offered one is an
    alternative flow (an email address, when it is optional). A flow with no stage
    left is the dummy stage. As Synapse's `_calculate_registration_flows`."""

    def __init__(self) -> None:
        self._required: list[str] = []
        self._offered: list[str] = []

    def require(self, stage: str) -> None:
        if stage not in self._required:
            self._required.append(stage)

    def offer(self, stage: str) -> None:
        if stage not in self._offered:
            self._offered.append(stage)

    def flows(self) -> list[list[str]]:
        optional = [stage for stage in self._offered if stage not in self._required]
        flows = [list(self._required)] + [[*self._required, stage] for stage in optional]
        return [flow or [DUMMY] for flow in flows]


@dataclass(slots=True)
class UiaSession:
    id: str
    operation: str
    user_id: str | None
    params: dict[str, Any]  # the parameters of the session's requests, the later ones win
    results: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    stored: bool = False


class UiaIncomplete(MatrixError):
    """The 401 of an incomplete flow: the flows, the session and what is completed."""

    def __init__(self, session_id: str, errcode: str, error: str, **extra: object) -> None:
        super().__init__(401, errcode, error, session=session_id, **extra)
        self.session_id = session_id


def operation_changed() -> MatrixError:
    return forbidden("Requested operation has changed during the UI authentication session.")


class UserInteractiveAuth:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._stages: dict[str, Stage] = {}
        self.add_stage(DummyStage())

    def add_stage(self, stage: Stage) -> None:
        self._stages[stage.type] = stage

    async def open(
        self,
        operation: str,
        auth: object,
        params: Mapping[str, Any],
        user_id: str | None = None,
    ) -> UiaSession:
        """The session `auth` names with this request's `params` merged in, or a new one
        (stored when it first has something to remember).

        403 when the session was opened for another operation or by another user."""
        session_id = auth.get("session") if isinstance(auth, dict) else None
        if isinstance(session_id, str):
            async with self._pool.acquire() as conn:
                row = await store.session(conn, session_id, _now_ms() - SESSION_LIFETIME_MS)
                if row is not None:
                    if row.operation != operation or row.user_id != user_id:
                        raise operation_changed()
                    if any(row.params.get(key) != value for key, value in params.items()):
                        row = await store.merge(conn, session_id, params=dict(params)) or row
            if row is not None:
                return UiaSession(
                    row.session_id,
                    operation,
                    user_id,
                    row.params,
                    row.results,
                    row.data,
                    stored=True,
                )
        # An unknown or expired session starts afresh, as if the client had sent none.
        return UiaSession(secrets.token_urlsafe(18), operation, user_id, dict(params))

    async def complete(
        self, session: UiaSession, auth: object, flows: Sequence[Flow]
    ) -> dict[str, Any]:
        """The results of the stages completed, once they complete one of `flows`;
        otherwise the 401 (UiaIncomplete) that lists the flows and what is left."""
        results = dict(session.results)
        allowed = {stage for flow in flows for stage in flow}
        failure: tuple[str, str] | None = None
        given = isinstance(auth, dict) and bool(auth)
        if isinstance(auth, dict) and given:
            kind = auth.get("type")
            stage = self._stages.get(kind) if isinstance(kind, str) and kind in allowed else None
            if kind is None:
                pass  # only the session: a client asking what is left
            elif stage is None:
                failure = ("M_UNRECOGNIZED", f"Unknown auth type {kind!r}.")
            else:
                attempt = Attempt(session.id, session.operation, session.user_id, session.params)
                try:
                    results[stage.type] = await stage.check(auth, attempt)
                except StageFailed as failed:
                    failure = (failed.errcode, failed.error)
                else:
                    results = await self._record(session, {stage.type: results[stage.type]})
        if any(all(stage in results for stage in flow) for flow in flows):
            return results
        await self._store(session)
        extra: dict[str, Any] = {
            "flows": [{"stages": list(flow)} for flow in flows],
            "params": self._params(allowed),
        }
        if given:
            extra["completed"] = [stage for stage in results if stage in allowed]
        if failure is None:
            # The challenge without an errcode: a first request, or a stage done and more to go.
            raise UiaIncomplete(session.id, "", "Additional authentication required.", **extra)
        raise UiaIncomplete(session.id, failure[0], failure[1], **extra)

    def _params(self, stages: set[str]) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for kind in sorted(stages):
            stage = self._stages.get(kind)
            given = stage.params() if stage is not None else None
            if given is not None:
                params[kind] = dict(given)
        return params

    async def _record(self, session: UiaSession, result: dict[str, Any]) -> dict[str, Any]:
        session.results.update(result)
        if not session.stored:
            return dict(session.results)
        async with self._pool.acquire() as conn:
            row = await store.merge(conn, session.id, results=result)
        if row is not None:
            # What other requests of the session completed meanwhile counts too.
            session.results = row.results
        return dict(session.results)

    async def _store(self, session: UiaSession) -> None:
        if session.stored:
            return
        now = _now_ms()
        async with self._pool.acquire() as conn:
            await store.delete_stale(conn, now - SESSION_LIFETIME_MS)
            await store.create(conn, session.id, now, session.operation, session.user_id, {})
            await store.merge(
                conn, session.id, params=session.params, results=session.results, data=session.data
            )
        session.stored = True

    async def remember(self, session: UiaSession, data: Mapping[str, Any]) -> None:
        """Keep `data` with the session for its later requests (a password's hash)."""
        session.data.update(data)
        if not session.stored:
            await self._store(session)
            return
        async with self._pool.acquire() as conn:
            await store.merge(conn, session.id, data=dict(data))

    async def finish(self, session: UiaSession) -> None:
        """The operation is done: the session cannot authorise it a second time."""
        if session.stored:
            async with self._pool.acquire() as conn:
                await store.delete(conn, session.id)

    @asynccontextmanager
    async def exclusive(self, session: UiaSession) -> AsyncIterator[SessionData]:
        """The session's data, read and kept again under a row lock: requests of one
        session that do the operation at once (a registration retried) take turns.
        What the block remembers is kept only when it ends without an error."""
        await self._store(session)
        async with self._pool.acquire() as conn, conn.transaction():
            row = await store.session(conn, session.id, 0, for_update=True)
            locked = SessionData(dict(row.data) if row is not None else {})
            yield locked
            if locked.changed:
                await store.merge(conn, session.id, data=locked.changed)


@dataclass(slots=True)
class SessionData:
    data: dict[str, Any]
    changed: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.changed[key] = value
