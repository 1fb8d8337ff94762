"""The refusals of the friends API, each with its own errcode.

The Matrix spec has no codes for these, so they are namespaced as it asks
(`COM.LINKCHAT_` + code); spec/friends.md lists them. A refusal that a
blocked user sees is a plain M_FORBIDDEN that never says "blocked".
"""

from __future__ import annotations

from homeserver.errors import CapabilityRefusal, MatrixError, forbidden

SELF_REQUEST = "COM.LINKCHAT_SELF_REQUEST"
ALREADY_FRIENDS = "COM.LINKCHAT_ALREADY_FRIENDS"
DUPLICATE_REQUEST = "COM.LINKCHAT_DUPLICATE_REQUEST"
NO_REQUEST = "COM.LINKCHAT_NO_REQUEST"
NOT_FRIENDS = "COM.LINKCHAT_NOT_FRIENDS"
USER_BLOCKED = "COM.LINKCHAT_USER_BLOCKED"
SELF_BLOCK = "COM.LINKCHAT_SELF_BLOCK"
NOT_BLOCKED = "COM.LINKCHAT_NOT_BLOCKED"
CONFLICT = "COM.LINKCHAT_CONFLICT"


def self_request() -> MatrixError:
    return MatrixError(400, SELF_REQUEST, "You cannot send a friend request to yourself.")


def already_friends() -> MatrixError:
    return MatrixError(400, ALREADY_FRIENDS, "You are already friends.")


def duplicate_request() -> MatrixError:
    return MatrixError(400, DUPLICATE_REQUEST, "You have already sent this user a friend request.")


def no_request() -> MatrixError:
    return MatrixError(404, NO_REQUEST, "There is no such friend request.")


def not_friends() -> MatrixError:
    return MatrixError(404, NOT_FRIENDS, "You are not friends with this user.")


def user_blocked() -> MatrixError:
    # Said only to the blocker, who knows.
    return MatrixError(400, USER_BLOCKED, "You have blocked this user; unblock them first.")


def self_block() -> MatrixError:
    return MatrixError(400, SELF_BLOCK, "You cannot block yourself.")


def not_blocked() -> MatrixError:
    return MatrixError(404, NOT_BLOCKED, "You have not blocked this user.")


def conflict() -> MatrixError:
    """What the server-kept account data was computed from changed meanwhile; retried."""
    return MatrixError(409, CONFLICT, "Your friends changed at the same time; try again.")


def request_refused() -> MatrixError:
    # The same words whether the target blocked the sender or not: a blocked
    # user learns nothing beyond the refusal.
    return forbidden("You cannot send a friend request to this user.")


def invite_refused() -> CapabilityRefusal:
    """An invite of someone who blocked the inviter: a 403 like any other."""
    return CapabilityRefusal(403, "M_FORBIDDEN", "You cannot invite this user.")
