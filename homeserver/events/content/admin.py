"""What the facts of the moderation chain hold (events/types.py): admin actions, admin flags.

`com.linkchat.admin.action` (not state), sent by the admin who acted:
`{"action": str, "target"?: str, "reason"?: str, "details"?: object}`: what
was done (`user.admin`, `user.deactivate`, `room.block` ...), on whom (a user,
room, event, media or report ID), why, and what else the action carried. JSON
Schema: spec/events/com.linkchat.admin.action.json.

`com.linkchat.admin.server_admin` (state, key the user ID): `{"admin": bool}`.
JSON Schema: spec/events/com.linkchat.admin.server_admin.json.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from homeserver.errors import invalid_param

# Action names: lower case words joined by dots (`user.deactivate`).
ACTION_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
MAX_ACTION_LENGTH = 100
MAX_TARGET_LENGTH = 512


class AdminActionContent(BaseModel):
    # A logged event is forever: keys this version does not know are kept.
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    action: str = Field(pattern=ACTION_PATTERN, max_length=MAX_ACTION_LENGTH)
    target: str | None = Field(default=None, max_length=MAX_TARGET_LENGTH)
    reason: str | None = None
    details: dict[str, Any] | None = None


class ServerAdminContent(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    admin: bool


M = TypeVar("M", bound=BaseModel)


def _parsed(model: type[M], content: Mapping[str, Any]) -> M:
    try:
        return model.model_validate(dict(content))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "content"
        raise invalid_param(f"{where}: {first['msg']}") from None


def parse_admin_action(content: Mapping[str, Any]) -> AdminActionContent:
    """The model of an admin action's content; M_INVALID_PARAM naming the field if it fits not."""
    return _parsed(AdminActionContent, content)


def parse_server_admin(content: Mapping[str, Any]) -> ServerAdminContent:
    return _parsed(ServerAdminContent, content)
