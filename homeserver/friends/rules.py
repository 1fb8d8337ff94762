"""Who may change a friend relation or a block, decided under the append lock.

`register` (called in app.py) makes the appender's rules call `authorize` for
every friend fact, block and account data draft of an account chain, and
`blocks.authorize_invite` for every room membership. Both sides of a relation
hold it in their own chain (state key: the other user) and every change
writes both in one append group, so each rule here is decided against the
state the log really has: two racing requests cannot both pass, and an
accept of a request cancelled a moment ago fails.

What the state of one chain cannot tell (whether the server's policy lets
these two users meet, whether a room invitee blocked its inviter) is checked
by the service before it appends; see friends/service.py and friends/blocks.py.
"""

from __future__ import annotations

from typing import Any

from homeserver.errors import MatrixError, forbidden, invalid_param
from homeserver.events import types
from homeserver.events.model import Draft, StateEdit
from homeserver.friends import errors
from homeserver.friends.blocks import authorize_invite, load_block_facts
from homeserver.friends.content import (
    DECLINED,
    FRIENDS,
    FRIENDS_ACCOUNT_DATA,
    INCOMING,
    OUTGOING,
    REMOVED,
    FriendAccepted,
    FriendRequested,
    friends_view,
    parse_block,
    parse_friend,
    relation_of,
)
from homeserver.log.rules import ACCOUNT, ROOM, ChainRules
from homeserver.projections.room_state import RoomState


def authorize(state: RoomState, draft: Draft) -> None:
    """Raise MatrixError unless `draft` (in the account chain `state`) may be appended."""
    if draft.type == types.FRIEND:
        _authorize_relation(state, draft)
    elif draft.type == types.FRIEND_BLOCK:
        _authorize_block(state, draft)
    elif draft.type == types.ACCOUNT_DATA:
        _authorize_account_data(state, draft)


def relation(state: RoomState, other: str) -> str | None:
    return relation_of(state.content(types.FRIEND, other))


def has_blocked(state: RoomState, other: str) -> bool:
    content = state.content(types.FRIEND_BLOCK, other)
    return content is not None and content.get("blocked") is True


def view_of(state: RoomState) -> dict[str, Any]:
    """The com.linkchat.friends account data this chain's friend facts make."""
    facts = {
        key[1]: entry.content for key, entry in state.entries.items() if key[0] == types.FRIEND
    }
    return friends_view(facts)


def _other_user(draft: Draft) -> str:
    other = draft.state_key
    if other is None or not types.is_account_chain(other) or ":" not in other:
        raise invalid_param("The state key of a friend fact is a user ID.")
    return other


def _authorize_relation(state: RoomState, draft: Draft) -> None:
    owner, sender = draft.room_id, draft.sender
    other = _other_user(draft)
    if other == owner:
        raise errors.self_request()
    if sender not in (owner, other):
        raise forbidden("Only the two users may change their relation.")
    change = parse_friend(draft.content)
    current = relation(state, other)
    # Seen from this chain: is the one acting its owner, or the other user?
    by_owner = sender == owner
    if isinstance(change, FriendRequested):
        requester = owner if change.relation == OUTGOING else other
        if sender != requester:
            raise forbidden("A friend request is sent by its requester.")
        if current == FRIENDS:
            raise errors.already_friends()
        if current is not None:
            raise errors.duplicate_request()
        if has_blocked(state, other):
            raise errors.user_blocked() if by_owner else errors.request_refused()
        return
    if isinstance(change, FriendAccepted):
        if current == FRIENDS:
            raise errors.already_friends()
        # Accepted by the one who received the request.
        if current != (INCOMING if by_owner else OUTGOING):
            raise errors.no_request()
        return
    if change.ended == REMOVED:
        if current != FRIENDS:
            raise errors.not_friends()
        return
    # Declined by the one who received the request, cancelled by the one who sent it.
    received_by_sender = change.ended == DECLINED
    if current != (INCOMING if by_owner == received_by_sender else OUTGOING):
        raise errors.no_request()


def _authorize_block(state: RoomState, draft: Draft) -> None:
    owner = draft.room_id
    if draft.sender != owner:
        raise forbidden("Only a user may change whom they block.")
    other = _other_user(draft)
    if other == owner:
        raise errors.self_block()
    change = parse_block(draft.content)
    if not change.blocked:
        if not has_blocked(state, other):
            raise errors.not_blocked()
        return
    # A block ends every relation first, in the same group: no friendship or
    # request outlives it, and none can start while it stands (see above).
    if relation(state, other) is not None:
        raise errors.conflict()


def _authorize_account_data(state: RoomState, draft: Draft) -> None:
    # Server-written account data is a StateEdit naming the event it replaces
    # (checked for every chain in log/rules.py), so an update of
    # m.direct or m.ignored_user_list never overwrites one it has not seen.
    # Clients cannot write a StateEdit: their account data is a plain Draft.
    content = draft.content
    if content.get("type") != FRIENDS_ACCOUNT_DATA or content.get("room_id") != "":
        return
    if not isinstance(draft, StateEdit):
        # As the spec answers for m.fully_read: the server keeps this one.
        raise MatrixError(
            405, "M_BAD_JSON", f"{FRIENDS_ACCOUNT_DATA} is kept by the server; it cannot be set."
        )
    if content.get("content") != view_of(state):
        raise errors.conflict()


def register(rules: ChainRules) -> None:
    rules.add(ACCOUNT, {types.FRIEND, types.FRIEND_BLOCK, types.ACCOUNT_DATA}, authorize)
    # Nobody may invite a user who has blocked them.
    rules.add_with_facts(ROOM, {types.MEMBER}, authorize_invite, load_block_facts)
