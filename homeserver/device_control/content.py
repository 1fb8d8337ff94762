"""What the device events hold: one pydantic model per event type.

- `com.linkchat.device.capabilities` (state, key ""), sent by the device:
  `{"actions": {name: {"description"?, "args_schema"}}}`, the actions it
  accepts, each with a JSON Schema (draft 2020-12) for its arguments.
- `com.linkchat.device.command`: `{"action", "args", "ttl_ms"}`.
- `com.linkchat.device.result`, sent by the device: `{"status", "output"?,
  "error"?, "m.relates_to": {"rel_type": "com.linkchat.result", "event_id"}}`.
- `com.linkchat.device.command.expired`, sent by the server's system user
  once a command's ttl passed unfinished: `{"m.relates_to": ...}` as a result.

JSON Schemas: spec/events/com.linkchat.device.*.json; tests/test_device_commands.py
checks they accept and refuse what these models do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from homeserver.errors import bad_json, validation_problem
from homeserver.events import types

# A week: a command nobody finished by then expires. A logged command is
# forever, so only acceptance checks this bound, never the reducer.
MAX_TTL_MS = 7 * 24 * 3600 * 1000
ACTION_NAME = r"^[A-Za-z0-9_.:-]{1,64}$"
MAX_ACTIONS = 100
MAX_TEXT = 4096

RESULT_STATUSES = ("accepted", "running", "succeeded", "failed", "rejected")
ResultStatus = Literal["accepted", "running", "succeeded", "failed", "rejected"]


class _Content(BaseModel):
    # Clients may add keys we do not know (Matrix style); we never coerce types.
    model_config = ConfigDict(extra="allow", strict=True, frozen=True, populate_by_name=True)


class Action(_Content):
    description: str | None = Field(default=None, max_length=MAX_TEXT)
    args_schema: dict[str, Any]


class CapabilitiesContent(_Content):
    actions: dict[str, Action] = Field(max_length=MAX_ACTIONS)


class CommandContent(_Content):
    action: str = Field(pattern=ACTION_NAME)
    args: dict[str, Any] = Field(default_factory=dict)
    ttl_ms: int = Field(ge=1, le=MAX_TTL_MS)


class ResultRelation(_Content):
    rel_type: Literal["com.linkchat.result"]
    event_id: str = Field(pattern=r"^\$.+")


class ResultContent(_Content):
    status: ResultStatus
    output: Any = None
    error: str | None = Field(default=None, max_length=MAX_TEXT)
    relates_to: ResultRelation = Field(alias="m.relates_to")


class ExpiredContent(_Content):
    relates_to: ResultRelation = Field(alias="m.relates_to")


MODELS: dict[str, type[_Content]] = {
    types.DEVICE_CAPABILITIES: CapabilitiesContent,
    types.DEVICE_COMMAND: CommandContent,
    types.DEVICE_RESULT: ResultContent,
    types.DEVICE_COMMAND_EXPIRED: ExpiredContent,
}


Model = TypeVar("Model", bound=_Content)


def parse(model: type[Model], content: Mapping[str, Any]) -> Model:
    """The content as `model`; 400 M_BAD_JSON naming the first problem otherwise."""
    try:
        return model.model_validate(dict(content))
    except ValidationError as error:
        raise bad_json("content." + validation_problem(error, "content")) from None
