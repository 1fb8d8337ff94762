"""device_lists (users whose devices changed, or who no longer share a room with the
user), device_one_time_keys_count and device_unused_fallback_key_types (homeserver/e2ee)."""

from __future__ import annotations

from homeserver.sync.assembly import SyncAssembly
from homeserver.sync.sources import DeviceListSource, OneTimeKeySource


class Encryption:
    def __init__(
        self, device_lists: DeviceListSource | None, one_time_keys: OneTimeKeySource | None
    ) -> None:
        self._device_lists = device_lists
        self._one_time_keys = one_time_keys

    async def __call__(self, sync: SyncAssembly) -> None:
        request = sync.request
        if self._device_lists is not None:
            changed, left = await self._device_lists.for_sync(
                request.user_id, request.after, sync.upper, sync.joined, sync.source.summary
            )
            sync.extra["device_lists"] = {"changed": changed, "left": left}
            if changed or left:
                sync.changed = True
        if self._one_time_keys is not None:
            counts, fallback = await self._one_time_keys.one_time_keys_for_sync(
                request.user_id, request.device_id
            )
            sync.extra["device_one_time_keys_count"] = counts
            sync.extra["device_unused_fallback_key_types"] = fallback
