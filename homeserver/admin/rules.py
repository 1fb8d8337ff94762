"""The shapes of the moderation chain's admin facts, decided under the append lock.

Who may act is decided before the append, by `ServerAdmins.require_admin`: the
configured admins are not in the log, so the rules here check shapes only.
"""

from __future__ import annotations

from homeserver.errors import forbidden
from homeserver.events import types
from homeserver.events.content.admin import parse_admin_action, parse_server_admin
from homeserver.events.model import Draft
from homeserver.log.rules import MODERATION, ChainRules
from homeserver.projections.room_state import RoomState


def authorize_action(state: RoomState, draft: Draft) -> None:
    """An admin action is a fact of its own, sent by the admin who acted."""
    if draft.state_key is not None:
        raise forbidden("admin actions are not state")
    parse_admin_action(draft.content)


def authorize_server_admin(state: RoomState, draft: Draft) -> None:
    """A server admin flag is state keyed by the flagged user."""
    if draft.state_key is None or not types.is_user_id(draft.state_key):
        raise forbidden("a server admin flag is keyed by a user ID")
    parse_server_admin(draft.content)


def register(rules: ChainRules) -> None:
    rules.add(MODERATION, {types.ADMIN_ACTION}, authorize_action)
    rules.add(MODERATION, {types.SERVER_ADMIN}, authorize_server_admin)
