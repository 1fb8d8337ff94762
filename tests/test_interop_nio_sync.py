"""Interop: matrix-nio's own sync loop (AsyncClient.sync_forever) against the running server.

Bob runs nio's `sync_forever` with a long-poll timeout, exactly as a nio bot
does, and registers nio callbacks. Alice, another user talking HTTP through
nio too, sends a message, a read receipt and a typing notice; each must reach
Bob's callbacks (RoomMessageText, ReceiptEvent, TypingNoticeEvent) and nio's
room model. Every wait is bounded, and a failing wait prints what nio saw and
the last requests Bob's client sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import nio  # type: ignore[import-untyped]
import pytest

from tests.matrix import MatrixClient, User
from tests.test_interop_nio import RecordingClient, expect

# Long-poll timeout nio sends to the server; the waits below are bounded well under it
# times a few, so a server that never wakes the long-poll fails instead of hanging.
LONG_POLL_MS = 5_000
WAIT_SECONDS = 10.0


class Inbox:
    """Everything Bob's nio callbacks received, with a bounded wait for a match."""

    def __init__(self, client: RecordingClient) -> None:
        self.client = client
        self.seen: list[tuple[str, Any]] = []
        self.sync_errors: list[Any] = []
        self._changed = asyncio.Event()

    def record(self, room: nio.MatrixRoom, event: Any) -> None:
        self.seen.append((room.room_id, event))
        self._changed.set()

    def sync_failed(self, response: Any) -> None:
        self.sync_errors.append(response)
        self._changed.set()

    async def wait_for(self, what: str, match: Callable[[str, Any], bool]) -> Any:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            assert not self.sync_errors, f"nio's /sync failed: {self.sync_errors[-1]!r}"
            for room_id, event in self.seen:
                if match(room_id, event):
                    return event
            left = deadline - time.monotonic()
            if left <= 0:
                recent = "\n  ".join(str(e) for e in self.client.exchanges[-5:])
                pytest.fail(
                    f"nio's sync loop did not deliver {what} within {WAIT_SECONDS}s\n"
                    f"  callbacks got: {[type(e).__name__ for _, e in self.seen]}\n"
                    f"  last requests:\n  {recent}"
                )
            self._changed.clear()
            try:
                async with asyncio.timeout(left):
                    await self._changed.wait()
            except TimeoutError:
                pass


def _client(hs: MatrixClient, user: User) -> RecordingClient:
    client = RecordingClient(hs.base_url, user.user_id)
    client.restore_login(user.user_id, user.device_id, user.token)
    return client


@pytest.fixture
async def room_of_two(
    hs: MatrixClient,
) -> AsyncIterator[tuple[RecordingClient, RecordingClient, str]]:
    """Alice and Bob as nio clients, both joined to Alice's room."""
    alice_user, bob_user = await hs.register(), await hs.register()
    room_id = await hs.create_room(alice_user, preset="public_chat", name="nio sync")
    await hs.join(bob_user, room_id)
    alice, bob = _client(hs, alice_user), _client(hs, bob_user)
    try:
        yield alice, bob, room_id
    finally:
        await alice.close()
        await bob.close()


@pytest.fixture
async def bob_syncing(
    room_of_two: tuple[RecordingClient, RecordingClient, str],
) -> AsyncIterator[Inbox]:
    """Bob's `sync_forever` loop running in the background, feeding an Inbox."""
    _, bob, _ = room_of_two
    inbox = Inbox(bob)
    bob.add_event_callback(inbox.record, nio.RoomMessageText)
    bob.add_ephemeral_callback(inbox.record, (nio.ReceiptEvent, nio.TypingNoticeEvent))
    bob.add_response_callback(inbox.sync_failed, nio.SyncError)
    first_sync = asyncio.Event()
    bob.add_response_callback(lambda _: first_sync.set(), (nio.SyncResponse, nio.SyncError))
    loop = asyncio.create_task(bob.sync_forever(timeout=LONG_POLL_MS))
    try:
        # The first sync (timeout 0) has to finish before Alice acts, or her events
        # would arrive in it instead of through the long-poll this test is about.
        synced = asyncio.create_task(first_sync.wait())
        await asyncio.wait(
            {loop, synced}, timeout=WAIT_SECONDS, return_when=asyncio.FIRST_COMPLETED
        )
        synced.cancel()
        assert first_sync.is_set(), "nio's first /sync did not finish in time"
        assert not inbox.sync_errors, f"nio's first /sync failed: {inbox.sync_errors[0]!r}"
        assert not loop.done(), f"sync_forever ended: {loop.exception()!r}"
        yield inbox
    finally:
        bob.stop_sync_forever()
        loop.cancel()
        try:
            async with asyncio.timeout(5):
                await loop
        except (asyncio.CancelledError, TimeoutError):
            pass


def _is_text(room_id: str, body: str) -> Callable[[str, Any], bool]:
    return lambda rid, event: (
        rid == room_id and isinstance(event, nio.RoomMessageText) and event.body == body
    )


async def test_nio_sync_loop_receives_message_receipt_and_typing_from_another_user(
    room_of_two: tuple[RecordingClient, RecordingClient, str], bob_syncing: Inbox
) -> None:
    alice, bob, room_id = room_of_two

    sent = expect(
        alice,
        await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hi bob"}),
        nio.RoomSendResponse,
    )
    message = await bob_syncing.wait_for("Alice's message", _is_text(room_id, "hi bob"))
    assert message.sender == alice.user_id
    assert message.event_id == sent.event_id

    # nio's update_receipt_marker sends {"thread_id": "main"} unless told otherwise
    # (thread_id=None makes it send null, which this server and Synapse refuse).
    expect(
        alice,
        await alice.update_receipt_marker(room_id, sent.event_id),
        nio.UpdateReceiptMarkerResponse,
    )
    receipt_event = await bob_syncing.wait_for(
        "Alice's read receipt",
        lambda rid, event: (
            rid == room_id
            and isinstance(event, nio.ReceiptEvent)
            and any(r.user_id == alice.user_id for r in event.receipts)
        ),
    )
    receipt = next(r for r in receipt_event.receipts if r.user_id == alice.user_id)
    assert receipt.event_id == sent.event_id
    assert receipt.receipt_type == "m.read"
    assert receipt.thread_id == "main"
    assert receipt.timestamp > 0
    threaded = bob.rooms[room_id].threaded_read_receipts[alice.user_id]["main"]
    assert threaded.event_id == sent.event_id

    expect(alice, await alice.room_typing(room_id, True, 30_000), nio.RoomTypingResponse)
    await bob_syncing.wait_for(
        "Alice typing",
        lambda rid, event: (
            rid == room_id
            and isinstance(event, nio.TypingNoticeEvent)
            and event.users == [alice.user_id]
        ),
    )
    assert bob.rooms[room_id].typing_users == [alice.user_id]

    expect(alice, await alice.room_typing(room_id, False), nio.RoomTypingResponse)
    await bob_syncing.wait_for(
        "Alice stopping typing",
        lambda rid, event: (
            rid == room_id and isinstance(event, nio.TypingNoticeEvent) and event.users == []
        ),
    )
    assert bob.rooms[room_id].typing_users == []


async def test_nio_read_markers_reach_the_sync_loop_as_an_unthreaded_receipt(
    room_of_two: tuple[RecordingClient, RecordingClient, str], bob_syncing: Inbox
) -> None:
    alice, bob, room_id = room_of_two
    sent = expect(
        alice,
        await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "read me"}),
        nio.RoomSendResponse,
    )
    await bob_syncing.wait_for("Alice's message", _is_text(room_id, "read me"))
    expect(
        alice,
        await alice.room_read_markers(room_id, sent.event_id, read_event=sent.event_id),
        nio.RoomReadMarkersResponse,
    )
    receipt_event = await bob_syncing.wait_for(
        "Alice's unthreaded read receipt",
        lambda rid, event: (
            rid == room_id
            and isinstance(event, nio.ReceiptEvent)
            and any(r.user_id == alice.user_id and r.thread_id is None for r in event.receipts)
        ),
    )
    receipt = next(r for r in receipt_event.receipts if r.user_id == alice.user_id)
    assert (receipt.event_id, receipt.receipt_type) == (sent.event_id, "m.read")
    assert bob.rooms[room_id].read_receipts[alice.user_id].event_id == sent.event_id
    # m.fully_read is Alice's private marker: Bob never sees it.
    assert all(
        r.receipt_type != "m.fully_read"
        for _, e in bob_syncing.seen
        if isinstance(e, nio.ReceiptEvent)
        for r in e.receipts
    )


async def test_nio_sync_loop_sees_its_own_message_once_with_its_transaction_id(
    room_of_two: tuple[RecordingClient, RecordingClient, str], bob_syncing: Inbox
) -> None:
    _, bob, room_id = room_of_two
    sent = expect(
        bob,
        await bob.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "mine"}, tx_id="txn-bob-1"
        ),
        nio.RoomSendResponse,
    )
    echo = await bob_syncing.wait_for("Bob's own message", _is_text(room_id, "mine"))
    assert echo.event_id == sent.event_id
    assert echo.source.get("unsigned", {}).get("transaction_id") == "txn-bob-1"
    await asyncio.sleep(0.3)
    copies = [e for _, e in bob_syncing.seen if getattr(e, "event_id", None) == sent.event_id]
    assert len(copies) == 1, copies
