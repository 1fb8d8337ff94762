"""Interop: matrix-nio 0.26 with end-to-end encryption (`matrix-nio[e2e]`), unmodified.

Two nio clients, each with its own crypto store, in an encrypted room: keys are
uploaded, queried and claimed the way nio does it, and a message is encrypted and
decrypted both ways. (nio 0.26's [e2e] extra brings vodozemac, which took over from
python-olm/libolm; nothing to compile.)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import nio  # type: ignore[import-untyped]
import pytest

from tests.matrix import MatrixClient, User

DEADLINE_SECONDS = 30.0


async def _client(hs: MatrixClient, user: User, store: Path) -> Any:
    client = nio.AsyncClient(
        hs.base_url,
        user.user_id,
        store_path=str(store),
        config=nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True),
    )
    login = await client.login(user.password, device_name="nio e2ee")
    assert isinstance(login, nio.LoginResponse), login
    return client


async def _sync_once(client: Any) -> Any:
    """One sync, then the key traffic nio asks for after it."""
    response = await client.sync(timeout=500)
    assert isinstance(response, nio.SyncResponse), response
    if client.should_upload_keys:
        assert isinstance(await client.keys_upload(), nio.KeysUploadResponse)
    if client.should_query_keys:
        assert isinstance(await client.keys_query(), nio.KeysQueryResponse)
    if client.should_claim_keys:
        claimed = await client.keys_claim(client.get_users_for_key_claiming())
        assert isinstance(claimed, nio.KeysClaimResponse), claimed
    return response


async def _until(what: str, clients: list[Any], check: Any) -> Any:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        for client in clients:
            await _sync_once(client)
        found = check()
        if found:
            return found
    pytest.fail(f"timed out waiting for {what}")


async def test_nio_with_encryption_exchanges_an_encrypted_message_both_ways(
    hs: MatrixClient, tmp_path: Path
) -> None:
    alice_user, bob_user = await hs.register(), await hs.register()
    for name in ("alice", "bob"):
        (tmp_path / name).mkdir()
    alice = await _client(hs, alice_user, tmp_path / "alice")
    bob = await _client(hs, bob_user, tmp_path / "bob")
    received: dict[str, list[tuple[str, str, str]]] = {"alice": [], "bob": []}

    def collect(name: str) -> Any:
        async def on_message(room: Any, event: Any) -> None:
            received[name].append((room.room_id, event.sender, event.body))

        return on_message

    alice.add_event_callback(collect("alice"), nio.RoomMessageText)
    bob.add_event_callback(collect("bob"), nio.RoomMessageText)
    try:
        for client in (alice, bob):
            await _sync_once(client)
        created = await alice.room_create(
            name="nio secret",
            invite=[bob_user.user_id],
            initial_state=[nio.EnableEncryptionBuilder().as_dict()],
        )
        assert isinstance(created, nio.RoomCreateResponse), created
        room_id = created.room_id
        await _until("bob's invite", [bob], lambda: room_id in bob.invited_rooms)
        assert isinstance(await bob.join(room_id), nio.JoinResponse)
        await _until(
            "bob in alice's room",
            [alice, bob],
            lambda: (
                room_id in alice.rooms
                and bob_user.user_id in alice.rooms[room_id].users
                and alice.rooms[room_id].encrypted
            ),
        )

        sent = await alice.room_send(
            room_id,
            "m.room.message",
            {"msgtype": "m.text", "body": "hello from nio alice"},
            ignore_unverified_devices=True,
        )
        assert isinstance(sent, nio.RoomSendResponse), sent
        on_server = await hs.ok("GET", f"rooms/{room_id}/event/{sent.event_id}", user=alice_user)
        assert on_server["type"] == "m.room.encrypted"
        await _until(
            "bob to decrypt alice's message",
            [bob],
            lambda: (room_id, alice_user.user_id, "hello from nio alice") in received["bob"],
        )

        answer = await bob.room_send(
            room_id,
            "m.room.message",
            {"msgtype": "m.text", "body": "hello from nio bob"},
            ignore_unverified_devices=True,
        )
        assert isinstance(answer, nio.RoomSendResponse), answer
        await _until(
            "alice to decrypt bob's answer",
            [alice],
            lambda: (room_id, bob_user.user_id, "hello from nio bob") in received["alice"],
        )
    finally:
        await alice.close()
        await bob.close()
