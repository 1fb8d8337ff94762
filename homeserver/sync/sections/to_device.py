"""to_device: the messages waiting for this device; those before `since` were received,
so they are deleted first."""

from __future__ import annotations

from homeserver.sync.assembly import SyncAssembly
from homeserver.sync.sources import ToDeviceSource

MAX_TO_DEVICE = 100


class ToDevice:
    def __init__(self, to_device: ToDeviceSource | None) -> None:
        self._to_device = to_device

    async def __call__(self, sync: SyncAssembly) -> None:
        if self._to_device is None or not sync.request.options.to_device:
            return
        request, since = sync.request, sync.request.since
        if since is not None and since.to_device:
            await self._to_device.acknowledge(request.user_id, request.device_id, since.to_device)
        sync.to_device, sync.to_device_position = await self._to_device.pending(
            request.user_id, request.device_id, sync.to_device_position, MAX_TO_DEVICE
        )
