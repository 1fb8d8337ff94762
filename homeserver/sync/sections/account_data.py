"""account_data, and each joined room's: what the user wrote in the window."""

from __future__ import annotations

from homeserver.sync.assembly import SyncAssembly


async def write_account_data(sync: SyncAssembly) -> None:
    allows = sync.request.options.account_data_allows
    written = await sync.source.account_data()
    sync.account_data = [item for item in written.global_events if allows(item["type"])]
    joined = sync.memberships.joined
    for room_id, items in written.by_room.items():
        if room_id in joined:
            room = sync.joined_room(room_id)
            room["account_data"]["events"] = [item for item in items if allows(item["type"])]
