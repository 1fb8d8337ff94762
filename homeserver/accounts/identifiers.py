"""User IDs and localparts, as the Matrix spec's grammar allows them."""

from __future__ import annotations

import re

from homeserver.errors import MatrixError

# fullmatch, not match with "$": "$" also matches before a trailing newline.
_LOCALPART = re.compile(r"[a-z0-9._=\-/+]+")
MAX_USER_ID_LENGTH = 255


def invalid_username(reason: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_USERNAME", reason)


# Device accounts are `@<owner>.dev.<suffix>` (device_control/service.py): a
# user who could register such an ID could pass for someone's device, so only
# the server makes them.
DEVICE_NAMESPACE = ".dev."


def exclusive(reason: str) -> MatrixError:
    return MatrixError(400, "M_EXCLUSIVE", reason)


def check_not_reserved(localpart: str) -> None:
    if DEVICE_NAMESPACE in localpart:
        raise exclusive(
            f"User IDs containing {DEVICE_NAMESPACE!r} are reserved for devices"
            " (POST /_linkchat/v1/devices)."
        )


def user_id_for(localpart: str, server_name: str) -> str:
    return f"@{localpart}:{server_name}"


def check_localpart(localpart: str, server_name: str) -> None:
    if not localpart:
        raise invalid_username("User ID cannot be empty.")
    if not _LOCALPART.fullmatch(localpart):
        raise invalid_username("User ID may only contain the characters a-z, 0-9, '.=_-/+'.")
    if localpart.startswith("_"):
        raise invalid_username("User ID may not begin with '_'.")
    if len(user_id_for(localpart, server_name)) > MAX_USER_ID_LENGTH:
        raise invalid_username(f"User ID may not be longer than {MAX_USER_ID_LENGTH} characters.")


def localpart_of(user: str, server_name: str) -> str | None:
    """The localpart of a user given as a localpart or full user ID on this server."""
    if not user.startswith("@"):
        return user.lower()
    local, sep, server = user[1:].partition(":")
    if not sep or server != server_name:
        return None
    # Localparts are lower-case; accept either spelling, as for a bare localpart.
    return local.lower()
