"""What a block forbids outside the friends API: inviting the blocker to a room.

Called by rooms/service.py before it appends an invite (POST /invite, and
createRoom's `invite` list, which is also how a direct chat is opened). The
room chain's state cannot know the invitee's blocks, so this is checked just
before the append rather than under its lock: an invite racing the block by
milliseconds can still land, which a client cannot tell from an invite sent
just before the block.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from homeserver.friends import errors
from homeserver.store import friends as friend_store


async def refuse_invites(pool: asyncpg.Pool, sender: str, invitees: Sequence[str]) -> None:
    """403 M_FORBIDDEN, without saying why, if any invitee has blocked `sender`."""
    if not invitees:
        return
    async with pool.acquire() as conn:
        if await friend_store.blockers_among(conn, sender, invitees):
            raise errors.invite_refused()
