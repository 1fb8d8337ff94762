"""What a block forbids outside the friends API: inviting the blocker to a room.

A room chain's state cannot know the invitee's blocks, which live in the
invitee's account chain, so the appender reads them with the batch's other
facts, under the append lock (`load_block_facts`), for the invites the batch
holds, and folds each block the batch accepts into them
(`BlockFacts.accepted`, the projection's reading of a block). An invite can
therefore never land after the block it races, nor beside it in one batch.
POST /invite and createRoom's `invite` list (which is also how a direct chat
is opened) both end in such an invite.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from homeserver.events import types
from homeserver.events.model import Draft, Event
from homeserver.friends import errors
from homeserver.projections.friends import block_of
from homeserver.projections.room_state import RoomState
from homeserver.store import friends as friend_store

# (blocker, blocked): the invitee and the inviter of an invite.
Pair = tuple[str, str]


@dataclass(frozen=True, slots=True)
class BlockFacts:
    # The (invitee, inviter) pairs of this batch's invites; other blocks are never looked up.
    wanted: frozenset[Pair]
    # Those of them where the invitee has blocked the inviter.
    in_force: frozenset[Pair]

    def accepted(self, event: Event) -> BlockFacts:
        if not self.wanted or event.type != types.FRIEND_BLOCK:
            return self
        block = block_of(event)
        if block is None or (pair := (block[0], block[1])) not in self.wanted:
            return self
        in_force = self.in_force | {pair} if block[2] else self.in_force - {pair}
        return BlockFacts(self.wanted, in_force)

    def refuses(self, draft: Draft) -> bool:
        """Whether `draft` invites someone who has blocked its sender."""
        pair = _invite_pair(draft)
        return pair is not None and pair in self.in_force


NO_BLOCKS = BlockFacts(frozenset(), frozenset())


def _invite_pair(draft: Draft) -> Pair | None:
    if (
        draft.type != types.MEMBER
        or draft.state_key is None
        or draft.state_key == draft.sender
        or draft.content.get("membership") != "invite"
    ):
        return None
    return draft.state_key, draft.sender


async def load_block_facts(conn: asyncpg.Connection, drafts: Sequence[Draft]) -> BlockFacts:
    wanted = frozenset(pair for draft in drafts if (pair := _invite_pair(draft)) is not None)
    if not wanted:
        return NO_BLOCKS
    return BlockFacts(wanted, frozenset(await friend_store.blocks_among(conn, list(wanted))))


def authorize_invite(state: RoomState, draft: Draft, blocks: BlockFacts) -> None:
    """Refuse an invite of someone who has blocked its sender."""
    if blocks.refuses(draft):
        raise errors.invite_refused()
