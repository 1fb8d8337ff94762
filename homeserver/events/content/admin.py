"""What the facts of the moderation chain hold (events/types.py): admin actions, admin flags.

`com.linkchat.admin.action` (not state), sent by the admin who acted:
`{"action": str, "target"?: str, "reason"?: str, "details"?: object}`: what
was done (`user.admin`, `user.deactivate`, `room.block` ...), on whom (a user,
room, event, media or report ID), why, and what else the action carried. JSON
Schema: spec/events/com.linkchat.admin.action.json.

`com.linkchat.admin.server_admin` (state, key the user ID): `{"admin": bool}`.
JSON Schema: spec/events/com.linkchat.admin.server_admin.json.

`com.linkchat.admin.ratelimit_override` (state, key the user ID):
`{"messages_per_second": int, "burst_count": int}` (0 per second: not limited),
or `{}` once removed. JSON Schema: spec/events/com.linkchat.admin.ratelimit_override.json.

`com.linkchat.admin.media_quarantine` (state, key the media ID): `{"quarantined": bool}`;
`com.linkchat.admin.media_deletion` (state, key the media ID): `{"deleted": true}`.
JSON Schemas: spec/events/com.linkchat.admin.media_*.json.

`com.linkchat.admin.registration_token` (state, key the token):
`{"uses_allowed": int | null, "expiry_time": int | null}`, or `{}` once deleted;
`com.linkchat.registration_token.used` (not state, sent by the new user):
`{"token": str, "session": str}`. JSON Schemas in spec/events/.

Each is read with events.content.parsing.parsed: a content that does not fit is
400 M_INVALID_PARAM naming the first field.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from homeserver.events.content.parsing import FactContent

# Action names: lower case words joined by dots (`user.deactivate`).
ACTION_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
MAX_ACTION_LENGTH = 100
MAX_TARGET_LENGTH = 512


class AdminActionContent(FactContent):
    action: str = Field(pattern=ACTION_PATTERN, max_length=MAX_ACTION_LENGTH)
    target: str | None = Field(default=None, max_length=MAX_TARGET_LENGTH)
    reason: str | None = None
    details: dict[str, Any] | None = None


class ServerAdminContent(FactContent):
    admin: bool


class RatelimitOverrideContent(FactContent):
    messages_per_second: int | None = Field(default=None, ge=0, le=2**31 - 1)
    burst_count: int | None = Field(default=None, ge=0, le=2**31 - 1)


class MediaQuarantineContent(FactContent):
    quarantined: bool


class MediaDeletionContent(FactContent):
    deleted: Literal[True]


# Synapse's grammar of a registration token.
TOKEN_PATTERN = r"^[A-Za-z0-9._~-]{1,64}$"


class RegistrationTokenContent(FactContent):
    uses_allowed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    expiry_time: int | None = Field(default=None, ge=0, le=2**53 - 1)


class RegistrationTokenUsedContent(FactContent):
    token: str = Field(pattern=TOKEN_PATTERN)
    session: str = Field(max_length=255)
