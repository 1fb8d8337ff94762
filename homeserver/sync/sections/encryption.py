"""device_lists (users whose devices changed, or who no longer share a room with the
user), device_one_time_keys_count and device_unused_fallback_key_types (homeserver/e2ee)."""

from __future__ import annotations

from dataclasses import dataclass

from homeserver.sync.assembly import SyncAssembly
from homeserver.sync.sources import DeviceListSource, OneTimeKeySource


@dataclass(eq=False)
class Encryption:
    device_lists: DeviceListSource | None
    one_time_keys: OneTimeKeySource | None

    async def __call__(self, sync: SyncAssembly) -> None:
        request = sync.request
        if self.device_lists is not None:
            changed, left = await self.device_lists.for_sync(
                request.user_id, request.after, sync.upper, sync.joined, sync.source.summary
            )
            sync.extra["device_lists"] = {"changed": changed, "left": left}
            if changed or left:
                sync.changed = True
        if self.one_time_keys is not None:
            counts, fallback = await self.one_time_keys.one_time_keys_for_sync(
                request.user_id, request.device_id
            )
            sync.extra["device_one_time_keys_count"] = counts
            sync.extra["device_unused_fallback_key_types"] = fallback
