"""Reading a fact's content into its model, for the rules that check facts the server
writes (reports, mutes, admin facts): a content that does not fit is 400
M_INVALID_PARAM naming the first field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from homeserver.errors import invalid_param, validation_problem

M = TypeVar("M", bound=BaseModel)


class FactContent(BaseModel):
    """The base of a fact's content model."""

    # A logged event is forever: keys this version does not know are kept. Strict: the
    # server writes these facts, so nothing needs coercing.
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)


def parsed(model: type[M], content: Mapping[str, Any]) -> M:
    try:
        return model.model_validate(dict(content))
    except ValidationError as error:
        raise invalid_param(validation_problem(error, "content")) from None
