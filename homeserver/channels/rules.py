"""What a channel's subscribers may send, decided under the append lock.

In a channel subscribers may only react (channels/presets.py). A reaction
must therefore be one, an annotation with a short key, or it would be a post
by another name; an annotation of any other type is held to the same key.
"""

from __future__ import annotations

from homeserver.errors import bad_json
from homeserver.events import types
from homeserver.events.model import Draft
from homeserver.events.validation import check_reaction_key
from homeserver.log.rules import ROOM, ChainRules
from homeserver.projections.room_state import RoomState


def is_channel(state: RoomState) -> bool:
    create = state.content(types.CREATE)
    return create is not None and create.get("type") == types.CHANNEL_ROOM_TYPE


def authorize_reaction(state: RoomState, draft: Draft) -> None:
    """Refuse, in a channel, a reaction that is no annotation, or an annotation's long key."""
    if not is_channel(state):
        return
    relates_to = draft.content.get("m.relates_to")
    if not isinstance(relates_to, dict) or relates_to.get("rel_type") != "m.annotation":
        if draft.type == types.REACTION:
            raise bad_json(
                "A reaction in a channel annotates an event: m.relates_to with"
                " rel_type m.annotation, event_id and key."
            )
        return
    key = relates_to.get("key")
    if draft.type == types.REACTION and (
        not isinstance(relates_to.get("event_id"), str) or not isinstance(key, str)
    ):
        raise bad_json("content.m.relates_to: a reaction names its event_id and key.")
    if isinstance(key, str):
        check_reaction_key(key)


def register(rules: ChainRules) -> None:
    # Any type may carry an annotation, not only m.reaction.
    rules.add_for_every_type(ROOM, authorize_reaction)
