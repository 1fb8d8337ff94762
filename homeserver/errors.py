"""The one error type: a Matrix error with its HTTP status and errcode.

Every layer may raise it; one middleware in app.py renders it. This module
imports nothing of ours so every layer can use it without a wrong-way arrow.
"""

from __future__ import annotations

import math

from pydantic import ValidationError


class MatrixError(Exception):
    def __init__(self, status: int, errcode: str, error: str, **extra: object) -> None:
        super().__init__(error)
        self.status = status
        self.errcode = errcode
        self.error = error
        self.extra = extra
        # HTTP headers the response carries besides the body (Retry-After).
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, object]:
        if not self.errcode:
            # The first UIA challenge is a 401 whose body is only flows/params/session.
            return dict(self.extra)
        return {"errcode": self.errcode, "error": self.error, **self.extra}


class CapabilityRefusal(MatrixError):
    """A capability's rule refusing a room event for a reason of its own (an invitee's
    block), not the Matrix room rules: createRoom passes it on as it is rather than as
    M_INVALID_ROOM_STATE."""


def validation_problem(error: ValidationError, whole: str) -> str:
    """The first problem pydantic found, named by where it is (`ttl_ms: Field required`),
    or by `whole` when it is the whole value's."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or whole
    return f"{where}: {first['msg']}"


def forbidden(reason: str) -> MatrixError:
    return MatrixError(403, "M_FORBIDDEN", reason)


def bad_json(reason: str) -> MatrixError:
    return MatrixError(400, "M_BAD_JSON", reason)


def not_json(reason: str = "Content not JSON.") -> MatrixError:
    return MatrixError(400, "M_NOT_JSON", reason)


def not_found(reason: str) -> MatrixError:
    return MatrixError(404, "M_NOT_FOUND", reason)


def invalid_param(reason: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", reason)


def too_large(reason: str) -> MatrixError:
    return MatrixError(413, "M_TOO_LARGE", reason)


def unrecognized(reason: str, status: int = 404) -> MatrixError:
    return MatrixError(status, "M_UNRECOGNIZED", reason)


def missing_param(reason: str) -> MatrixError:
    return MatrixError(400, "M_MISSING_PARAM", reason)


def unknown(reason: str, status: int = 500) -> MatrixError:
    return MatrixError(status, "M_UNKNOWN", reason)


def limit_exceeded(
    retry_after_seconds: float, reason: str = "Too many requests; try again later."
) -> MatrixError:
    """429 M_LIMIT_EXCEEDED: try again in `retry_after_seconds`.

    The spec's retry_after_ms in the body (older clients read it) and, since
    v1.10, a Retry-After header in whole seconds; both rounded up, so a client
    that waits exactly that long is let through.
    """
    retry_after_ms = max(1, math.ceil(retry_after_seconds * 1000))
    error = MatrixError(429, "M_LIMIT_EXCEEDED", reason, retry_after_ms=retry_after_ms)
    error.headers["Retry-After"] = str(math.ceil(retry_after_ms / 1000))
    return error


def unavailable(reason: str, retry_after_seconds: int = 1) -> MatrixError:
    """503 M_UNKNOWN with a Retry-After header: the server cannot serve this now (its
    database restarting, a queue full) and the client should try again soon, with
    the same transaction ID for a send."""
    error = MatrixError(503, "M_UNKNOWN", reason)
    error.headers["Retry-After"] = str(max(1, retry_after_seconds))
    return error
