"""What a profile fact holds: read by rules and services.

`com.linkchat.profile` (state key ""), in the account chain of its owner:
`{"displayname"?: str, "avatar_url"?: str}`; a missing key is an unset field.
JSON Schema: spec/events/com.linkchat.profile.json (tests/test_profiles.py
checks it agrees with this model).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from homeserver.errors import invalid_param, validation_problem

# As Synapse: a display name of at most 256 characters, an avatar URL of at most 1000.
MAX_DISPLAYNAME_LENGTH = 256
MAX_AVATAR_URL_LENGTH = 1000


class ProfileContent(BaseModel):
    # A logged event is forever: keys this version does not know are kept.
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    displayname: str | None = Field(default=None, max_length=MAX_DISPLAYNAME_LENGTH)
    avatar_url: str | None = Field(default=None, max_length=MAX_AVATAR_URL_LENGTH)

    def fields(self) -> dict[str, str]:
        """The set fields, as a profile fact and an m.room.member event carry them."""
        found: dict[str, str] = {}
        if self.displayname is not None:
            found["displayname"] = self.displayname
        if self.avatar_url is not None:
            found["avatar_url"] = self.avatar_url
        return found


def parse_profile(content: Mapping[str, Any]) -> ProfileContent:
    """The model of a profile fact's content; M_INVALID_PARAM naming the field if it fits not."""
    try:
        return ProfileContent.model_validate(dict(content))
    except ValidationError as error:
        raise invalid_param(validation_problem(error, "content")) from None
