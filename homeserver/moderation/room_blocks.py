"""What a blocked (or purged) room forbids: entering it. Decided under the append lock.

A room's chain cannot know it is blocked (the block is a fact of the moderation
chain), so the appender reads the blocks of the rooms its batch's joins, knocks
and invites enter, with the batch's other facts (`load_room_block_facts`), and
folds in each block the batch itself accepts (`RoomBlockFacts.accepted`): no
one can enter a room after the block that races them. A member already joined
may still send a join (a profile change does): they are not entering.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from homeserver.errors import forbidden
from homeserver.events import types
from homeserver.events.content.room_blocks import room_block_of
from homeserver.events.model import Draft, Event
from homeserver.projections.room_state import RoomState
from homeserver.store import room_blocks as room_block_store

ENTERING = ("join", "knock", "invite")
BLOCKED = "This room has been blocked on this server"


@dataclass(frozen=True, slots=True)
class RoomBlockFacts:
    wanted: frozenset[str]  # the rooms the batch's drafts enter; no other is looked up
    blocked: frozenset[str]  # those of them blocked (or purged: closed for good)

    def accepted(self, event: Event) -> RoomBlockFacts:
        block = room_block_of(event) if self.wanted else None
        if block is None or block[0] not in self.wanted:
            return self
        room_id, blocked = block
        now = self.blocked | {room_id} if blocked else self.blocked - {room_id}
        return RoomBlockFacts(self.wanted, now)


NO_ROOM_BLOCKS = RoomBlockFacts(frozenset(), frozenset())


def _entered(draft: Draft) -> str | None:
    if (
        draft.type != types.MEMBER
        or not types.is_room_chain(draft.room_id)
        or draft.content.get("membership") not in ENTERING
    ):
        return None
    return draft.room_id


async def load_room_block_facts(
    conn: asyncpg.Connection, drafts: Sequence[Draft]
) -> RoomBlockFacts:
    wanted = frozenset(room for draft in drafts if (room := _entered(draft)) is not None)
    if not wanted:
        return NO_ROOM_BLOCKS
    return RoomBlockFacts(
        wanted, frozenset(await room_block_store.closed_among(conn, list(wanted)))
    )


def authorize_entry(state: RoomState, draft: Draft, blocks: RoomBlockFacts) -> None:
    """Refuse entering a blocked room: a join (but a joined member's), a knock, an invite."""
    if draft.room_id not in blocks.blocked or _entered(draft) is None:
        return
    if (
        draft.content.get("membership") == "join"
        and state.membership(draft.state_key or "") == "join"
    ):
        return
    raise forbidden(BLOCKED)
