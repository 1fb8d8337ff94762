"""The shapes of the moderation chain's admin facts, decided under the append lock.

Who may act is decided before the append, by `ServerAdmins.require_admin`: the
configured admins are not in the log, so the rules here check shapes only.
"""

from __future__ import annotations

import re

from homeserver.errors import forbidden
from homeserver.events import types
from homeserver.events.content.admin import (
    TOKEN_PATTERN,
    AdminActionContent,
    MediaDeletionContent,
    MediaQuarantineContent,
    RatelimitOverrideContent,
    RegistrationTokenContent,
    RegistrationTokenUsedContent,
    ServerAdminContent,
)
from homeserver.events.content.parsing import parsed
from homeserver.events.model import Draft
from homeserver.log.rules import MODERATION, ChainRules
from homeserver.projections.room_state import RoomState


def authorize_action(state: RoomState, draft: Draft) -> None:
    """An admin action is a fact of its own, sent by the admin who acted."""
    if draft.state_key is not None:
        raise forbidden("admin actions are not state")
    parsed(AdminActionContent, draft.content)


def authorize_server_admin(state: RoomState, draft: Draft) -> None:
    """A server admin flag is state keyed by the flagged user."""
    if draft.state_key is None or not types.is_user_id(draft.state_key):
        raise forbidden("a server admin flag is keyed by a user ID")
    parsed(ServerAdminContent, draft.content)


def authorize_ratelimit_override(state: RoomState, draft: Draft) -> None:
    """A user's own rate limit is state keyed by the user: both numbers, or none (removed)."""
    if draft.state_key is None or not types.is_user_id(draft.state_key):
        raise forbidden("a rate limit override is keyed by a user ID")
    found = parsed(RatelimitOverrideContent, draft.content)
    if draft.content and (found.messages_per_second is None or found.burst_count is None):
        raise forbidden("a rate limit override gives messages_per_second and burst_count")


def authorize_media_fact(state: RoomState, draft: Draft) -> None:
    """A quarantine or deletion of media is state keyed by the media ID."""
    if draft.state_key is None or not draft.state_key:
        raise forbidden("a media fact is keyed by the media ID")
    if draft.type == types.MEDIA_QUARANTINE:
        parsed(MediaQuarantineContent, draft.content)
    else:
        parsed(MediaDeletionContent, draft.content)


def authorize_registration_token(state: RoomState, draft: Draft) -> None:
    """A registration token's settings are state keyed by the token; {} deletes it."""
    if draft.state_key is None or re.fullmatch(TOKEN_PATTERN, draft.state_key) is None:
        raise forbidden("a registration token fact is keyed by the token")
    parsed(RegistrationTokenContent, draft.content)


def authorize_registration_token_use(state: RoomState, draft: Draft) -> None:
    """A use is a fact of its own, sent by the account it created."""
    if draft.state_key is not None:
        raise forbidden("a registration token use is not state")
    parsed(RegistrationTokenUsedContent, draft.content)


def register(rules: ChainRules) -> None:
    rules.add(MODERATION, {types.ADMIN_ACTION}, authorize_action)
    rules.add(MODERATION, {types.SERVER_ADMIN}, authorize_server_admin)
    rules.add(MODERATION, {types.RATELIMIT_OVERRIDE}, authorize_ratelimit_override)
    rules.add(MODERATION, {types.MEDIA_QUARANTINE, types.MEDIA_DELETION}, authorize_media_fact)
    rules.add(MODERATION, {types.REGISTRATION_TOKEN}, authorize_registration_token)
    rules.add(MODERATION, {types.REGISTRATION_TOKEN_USED}, authorize_registration_token_use)
