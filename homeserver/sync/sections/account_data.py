"""account_data, and each joined or left room's: what the user wrote in the window."""

from __future__ import annotations

from homeserver.sync.assembly import SyncAssembly


async def write_account_data(sync: SyncAssembly) -> None:
    allows = sync.request.options.account_data_allows
    written = await sync.source.account_data()
    sync.account_data = [item for item in written.global_events if allows(item["type"])]
    joined = sync.memberships.joined
    for room_id, items in written.by_room.items():
        shown = [item for item in items if allows(item["type"])]
        if room_id in joined:
            sync.joined_room(room_id)["account_data"]["events"] = shown
        elif room_id in sync.leave:
            sync.leave[room_id]["account_data"]["events"] = shown
