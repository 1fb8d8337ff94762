"""Chain heads and current state, as the appender needs them to authorize and chain."""

from __future__ import annotations

from types import MappingProxyType

import asyncpg

from homeserver.events.canonical import decode
from homeserver.projections.room_state import ChainHead, RoomState, StateEntry


async def load_state(conn: asyncpg.Connection, room_id: str, head: ChainHead | None) -> RoomState:
    if head is None:
        return RoomState(room_id)
    rows = await conn.fetch(
        "SELECT s.type, s.state_key, s.event_id, e.sender, e.json FROM current_state s"
        " JOIN events e ON e.event_id = s.event_id WHERE s.room_id = $1",
        room_id,
    )
    entries = {
        (row["type"], row["state_key"]): StateEntry(
            row["event_id"], row["sender"], decode(row["json"])["content"]
        )
        for row in rows
    }
    return RoomState(room_id, head, MappingProxyType(entries))
