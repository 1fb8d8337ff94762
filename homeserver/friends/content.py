"""What the friend facts hold, and the account data the server derives from them.

`com.linkchat.friend` (state key: the other user), in each side's chain:

- `{"relation": "outgoing" | "incoming", "ts", "message"?}`: a pending request,
  sent by the chain's owner (outgoing) or to them (incoming);
- `{"relation": "friends", "since", "room_id"}`: friends, with their direct chat;
- `{"ended": "declined" | "cancelled" | "removed"}`: no relation any more.

`com.linkchat.friend.block` (state key: the blocked user), in the blocker's
chain: `{"blocked": true, "ts"}` or `{"blocked": false}`.

JSON Schemas: spec/events/com.linkchat.friend.json, ...friend.block.json and
com.linkchat.friends.json (the account data); tests check they agree with
these models.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from homeserver.errors import bad_json
from homeserver.events import types

OUTGOING = "outgoing"
INCOMING = "incoming"
FRIENDS = "friends"
DECLINED = "declined"
CANCELLED = "cancelled"
REMOVED = "removed"

# Global account data the server keeps current, and the Matrix type it edits
# on accept (a block edits types.IGNORED_USER_LIST).
FRIENDS_ACCOUNT_DATA = "com.linkchat.friends"
DIRECT = "m.direct"

# As LinkedIn caps an invitation note; every pending message also sits in
# com.linkchat.friends, one event of at most limits.max_event_bytes.
MAX_MESSAGE_LENGTH = 300


class _Content(BaseModel):
    # Clients never write these, but a logged event is forever: unknown keys are kept.
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)


class FriendRequested(_Content):
    relation: Literal["outgoing", "incoming"]
    ts: int = Field(ge=0)
    message: str | None = Field(default=None, max_length=MAX_MESSAGE_LENGTH)


class FriendAccepted(_Content):
    relation: Literal["friends"]
    since: int = Field(ge=0)
    room_id: str = Field(pattern=r"^![^:]+:.+$")


class FriendEnded(_Content):
    ended: Literal["declined", "cancelled", "removed"]


FriendContent = FriendRequested | FriendAccepted | FriendEnded


class BlockContent(_Content):
    blocked: bool
    ts: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _blocking_says_when(self) -> BlockContent:
        if self.blocked and self.ts is None:
            raise ValueError("a block says when it was made (ts)")
        return self


def parse_friend(content: Mapping[str, Any]) -> FriendContent:
    """The model of a `com.linkchat.friend` content; M_BAD_JSON if it fits none."""
    relation = content.get("relation")
    model: type[FriendContent]
    if relation in (OUTGOING, INCOMING):
        model = FriendRequested
    elif relation == FRIENDS:
        model = FriendAccepted
    elif "relation" in content:
        raise bad_json(f"relation must be {OUTGOING}, {INCOMING} or {FRIENDS}")
    else:
        model = FriendEnded
    try:
        return model.model_validate(dict(content))
    except ValidationError as error:
        raise bad_json(f"{types.FRIEND}: {error.errors()[0]['msg']}") from None


def parse_block(content: Mapping[str, Any]) -> BlockContent:
    try:
        return BlockContent.model_validate(dict(content))
    except ValidationError as error:
        raise bad_json(f"{types.FRIEND_BLOCK}: {error.errors()[0]['msg']}") from None


def relation_of(content: Mapping[str, Any] | None) -> str | None:
    """outgoing, incoming or friends; None when there is no relation."""
    relation = content.get("relation") if content is not None else None
    return relation if isinstance(relation, str) else None


def friends_view(facts: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The `com.linkchat.friends` account data for one user, from their friend facts
    (other user -> content). The rules compute it from the chain's state and the
    service from the same facts read back, so both must come through here."""
    friends: dict[str, Any] = {}
    incoming: dict[str, Any] = {}
    outgoing: dict[str, Any] = {}
    for other in sorted(facts):
        content = facts[other]
        relation = relation_of(content)
        if relation == FRIENDS:
            friends[other] = {"since": content.get("since"), "room_id": content.get("room_id")}
        elif relation in (INCOMING, OUTGOING):
            side = incoming if relation == INCOMING else outgoing
            side[other] = {"message": content.get("message"), "ts": content.get("ts")}
    return {"friends": friends, "incoming": incoming, "outgoing": outgoing}
