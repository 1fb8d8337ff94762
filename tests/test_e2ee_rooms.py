"""Encrypted rooms elsewhere: search leaves encrypted events out; media is opaque bytes."""

from __future__ import annotations

import os

from tests.matrix import MatrixClient

MEGOLM = "m.megolm.v1.aes-sha2"


async def test_search_leaves_encrypted_events_out(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(
        alice,
        preset="private_chat",
        invite=[bob.user_id],
        initial_state=[{"type": "m.room.encryption", "content": {"algorithm": MEGOLM}}],
    )
    await hs.join(bob, room)
    # Whatever an encrypted event carries in the clear is not searchable text.
    await hs.send(
        alice,
        room,
        {
            "algorithm": MEGOLM,
            "ciphertext": "pineapple",
            "body": "pineapple",
            "sender_key": "k",
            "session_id": "s",
            "device_id": "D",
        },
        event_type="m.room.encrypted",
    )
    plain = await hs.send(alice, room, {"msgtype": "m.notice", "body": "pineapple in clear"})

    reply = await hs.ok(
        "POST",
        "search",
        {"search_categories": {"room_events": {"search_term": "pineapple"}}},
        user=bob,
    )
    results = reply["search_categories"]["room_events"]["results"]
    assert [r["result"]["event_id"] for r in results] == [plain]


async def test_media_for_an_encrypted_room_is_stored_and_served_as_opaque_bytes(
    hs: MatrixClient,
) -> None:
    alice = await hs.register()
    ciphertext = os.urandom(4096)
    async with hs.http.post(
        "/_matrix/media/v3/upload",
        data=ciphertext,
        headers={
            "Authorization": f"Bearer {alice.token}",
            "Content-Type": "application/octet-stream",
        },
    ) as reply:
        assert reply.status == 200
        uri = (await reply.json())["content_uri"]
    server, media_id = uri.removeprefix("mxc://").split("/")
    async with hs.http.get(
        f"/_matrix/client/v1/media/download/{server}/{media_id}",
        headers={"Authorization": f"Bearer {alice.token}"},
    ) as download:
        assert download.status == 200
        assert await download.read() == ciphertext
