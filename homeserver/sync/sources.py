"""What the sync builder needs from the receipt, typing, to-device, account-data, presence
and end-to-end encryption services."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from homeserver.sync.recent import WindowSummary

    # The tail's summary of a sync's window, when the tail answers it.
    Held = WindowSummary | None

JsonDict = dict[str, Any]
UserTest = Callable[[str], bool]  # whose presence a filter lets through


class ReceiptSource(Protocol):
    async def receipts_for_sync(
        self, user_id: str, room_ids: Sequence[str], since: int | None, until: int
    ) -> dict[str, JsonDict]: ...


class AccountDataSource(Protocol):
    async def global_account_data_for_sync(
        self, user_id: str, since: int | None, until: int
    ) -> list[JsonDict]: ...

    async def room_account_data_for_sync(
        self, user_id: str, since: int | None, until: int
    ) -> dict[str, list[JsonDict]]: ...


class TypingSource(Protocol):
    async def current_serial(self) -> int: ...

    async def typing_for_sync(
        self, room_ids: Sequence[str], since_serial: int | None
    ) -> dict[str, list[str]]: ...


class ToDeviceSource(Protocol):
    async def pending(
        self, user_id: str, device_id: str, after: int, limit: int = 100
    ) -> tuple[list[JsonDict], int]: ...

    async def acknowledge(self, user_id: str, device_id: str, up_to: int) -> None: ...

    def known_empty(self, user_id: str, device_id: str, after: int) -> bool: ...


class PresenceSource(Protocol):
    @property
    def position(self) -> int: ...

    async def presence_for_sync(
        self,
        user_id: str,
        room_ids: Collection[str],
        since: int | None,
        allows: UserTest,
        *,
        rooms_joined: Collection[str] = (),
        users_joined: Collection[str] = (),
        peeked: Collection[str] = (),
    ) -> tuple[list[JsonDict], int]: ...


class DeviceListSource(Protocol):
    async def for_sync(
        self, user_id: str, since: int | None, upper: int, joined: Collection[str], window: Held
    ) -> tuple[list[str], list[str]]: ...


class OneTimeKeySource(Protocol):
    async def one_time_keys_for_sync(
        self, user_id: str, device_id: str
    ) -> tuple[dict[str, int], list[str]]: ...
