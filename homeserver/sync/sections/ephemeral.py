"""Each joined room's ephemeral events: read receipts written in the window (not those
of users the user ignores), and who is typing where that changed."""

from __future__ import annotations

from homeserver.events.model import JsonDict
from homeserver.sync.assembly import SyncAssembly
from homeserver.sync.options import unignored, without_readers
from homeserver.sync.sources import TypingSource


class Ephemeral:
    def __init__(self, typing: TypingSource | None) -> None:
        self._typing = typing

    async def __call__(self, sync: SyncAssembly) -> None:
        options, since = sync.request.options, sync.request.since
        room_ids = [*sync.memberships.joined, *sync.memberships.peeked]
        receipts: dict[str, JsonDict] = {}
        if options.ephemeral_allows("m.receipt"):
            receipts = without_readers(await sync.source.receipts(room_ids), options.ignored)
        typing: dict[str, list[str]] = {}
        if self._typing is not None:
            # Read before whom it shows: a change meanwhile is shown again, never missed.
            sync.typing_serial = await self._typing.current_serial()
            unchanged = since is not None and since.typing == sync.typing_serial
            if not unchanged and options.ephemeral_allows("m.typing"):
                typing = await self._typing.typing_for_sync(
                    room_ids, since.typing if since is not None else None
                )
        for room_id in dict.fromkeys([*receipts, *typing]) if typing else receipts:
            events: list[JsonDict] = []
            if room_id in receipts:
                events.append({"type": "m.receipt", "content": receipts[room_id]})
            if room_id in typing:
                user_ids = unignored(typing[room_id], options)
                events.append({"type": "m.typing", "content": {"user_ids": user_ids}})
            if events:
                sync.joined_room(room_id)["ephemeral"]["events"] = events
