"""The shape of every chain: rooms by the Matrix rules, accounts and aliases by ours.

The appender's rules (log/rules.py) decide every draft by `authorize` first,
under the append lock, then by the rules each capability added for its own
event types (friends/, device_control/, channels/, profiles/ rules.py ...),
wired in app.py: rooms/ knows none of them.
"""

from __future__ import annotations

from homeserver.errors import MatrixError, forbidden, not_found
from homeserver.events import types
from homeserver.events.model import Draft, StateEdit
from homeserver.projections.room_state import RoomState
from homeserver.rooms.auth import authorize as authorize_room_event

# What an account fact says the account is: kept by every edit of it.
ACCOUNT_IDENTITY = ("kind", "created_ts", "owner")

# Account facts that are not state: an upload record, signatures (homeserver/e2ee).
NOT_STATE_ACCOUNT_FACTS = frozenset({types.MEDIA, types.E2EE_SIGNATURES})


def authorize(state: RoomState, draft: Draft, redacted_sender: str | None) -> None:
    if types.is_room_chain(draft.room_id):
        authorize_room_event(state, draft, redacted_sender)
    elif types.is_account_chain(draft.room_id):
        _authorize_account_fact(state, draft)
    elif types.is_alias_chain(draft.room_id):
        _authorize_alias_fact(state, draft)
    elif types.is_moderation_chain(draft.room_id):
        _authorize_moderation_fact(draft)
    else:
        raise forbidden(f"{draft.room_id!r} is not a room, user, alias or moderation chain")


def _authorize_account_fact(state: RoomState, draft: Draft) -> None:
    if draft.type in NOT_STATE_ACCOUNT_FACTS:
        # Upload records and signatures never change: each is a fact of its own.
        if draft.state_key is not None:
            raise forbidden(f"{draft.type} facts are not state")
    elif draft.state_key is None:
        raise forbidden("account facts are state")
    if draft.type == types.ACCOUNT:
        # The account fact is written at registration, into an empty chain; after that
        # only as an edit of the current one (deactivation, erasure, reactivation),
        # which never changes what the account is or when it was made.
        if not state.exists:
            return
        current = state.content(types.ACCOUNT)
        if not isinstance(draft, StateEdit) or current is None:
            raise MatrixError(400, "M_USER_IN_USE", "User ID already taken.")
        if any(draft.content.get(key) != current.get(key) for key in ACCOUNT_IDENTITY):
            raise forbidden("An account's kind and creation time never change.")
        return
    if state.get(types.ACCOUNT) is None:
        raise not_found(f"no account {draft.room_id}")


def _authorize_moderation_fact(draft: Draft) -> None:
    """Moderation facts are written by the server for a user (an admin, a reporter), only
    of the types a capability gave rules for (log/rules.py; homeserver/admin/rules.py):
    who may act is decided before the append, by the admin API's check."""
    if not types.is_user_id(draft.sender):
        raise forbidden("moderation facts are written for a user")


def _authorize_alias_fact(state: RoomState, draft: Draft) -> None:
    if draft.type != types.ALIAS or draft.state_key != "":
        raise forbidden("alias chains hold only alias facts")
    current = state.content(types.ALIAS) or {}
    if "room_id" in draft.content:
        if "room_id" in current:
            raise MatrixError(409, "M_UNKNOWN", f"Room alias {draft.room_id} already exists.")
        return
    if "room_id" not in current:
        raise not_found(f"Room alias {draft.room_id} not found.")
