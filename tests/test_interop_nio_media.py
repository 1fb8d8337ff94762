"""Interop: matrix-nio sends a picture the way a real client does, and another nio user gets it.

nio uploads with `POST /_matrix/media/v3/upload?filename=...` (token in the
query string, body streamed from a file object) and downloads and thumbnails
through the authenticated `/_matrix/client/v1/media/...` paths; a download
without a file name ends in a `/`.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import nio  # type: ignore[import-untyped]
import pytest
from PIL import Image

from tests.matrix import MatrixClient
from tests.test_interop_nio import ClientFactory, expect, recording_clients, register


@pytest.fixture
async def nio_clients(hs: MatrixClient) -> AsyncIterator[ClientFactory]:
    async with recording_clients(hs) as make:
        yield make


def _picture() -> bytes:
    image = Image.new("RGB", (640, 480), "orange")
    image.paste(Image.new("RGB", (200, 100), "navy"), (40, 40))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


async def test_nio_user_sends_a_picture_and_the_other_downloads_the_same_bytes(
    nio_clients: ClientFactory,
) -> None:
    alice = await register(nio_clients, "alice")
    bob = await register(nio_clients, "bob")

    # A chat client sets a display name before anything else. The profile
    # endpoints are built separately; until they answer, this step is the
    # one expected failure of this test (reported at the end).
    named = await alice.set_displayname("Alice with pictures")
    display_name_missing = not isinstance(named, nio.ProfileSetDisplayNameResponse)

    config = expect(
        alice, await alice.content_repository_config(), nio.ContentRepositoryConfigResponse
    )
    assert config.upload_size == 50 * 1024 * 1024

    picture = _picture()
    uploaded, decryption = await alice.upload(
        io.BytesIO(picture),
        content_type="image/png",
        filename="holiday picture ☀.png",
        filesize=len(picture),
    )
    expect(alice, uploaded, nio.UploadResponse)
    assert decryption is None
    mxc = uploaded.content_uri
    assert mxc.startswith("mxc://localhost/")

    room = expect(
        alice,
        await alice.room_create(name="pictures", invite=[bob.user_id]),
        nio.RoomCreateResponse,
    ).room_id
    expect(bob, await bob.join(room), nio.JoinResponse)
    content = {
        "msgtype": "m.image",
        "body": "holiday picture ☀.png",
        "url": mxc,
        "info": {"mimetype": "image/png", "size": len(picture), "w": 640, "h": 480},
    }
    sent = expect(
        alice, await alice.room_send(room, "m.room.message", content), nio.RoomSendResponse
    )

    event = expect(bob, await bob.room_get_event(room, sent.event_id), nio.RoomGetEventResponse)
    assert isinstance(event.event, nio.RoomMessageImage), event.event
    assert event.event.url == mxc

    got = expect(bob, await bob.download(mxc=event.event.url), nio.MemoryDownloadResponse)
    assert got.body == picture
    assert got.content_type == "image/png"
    assert got.filename == "holiday picture ☀.png"
    assert bob.exchanges[-1].path.startswith("/_matrix/client/v1/media/download/localhost/")

    server_name, media_id = mxc.removeprefix("mxc://").split("/")
    thumb = expect(
        bob,
        await bob.thumbnail(server_name, media_id, 320, 240, nio.ResizingMethod.scale),
        nio.ThumbnailResponse,
    )
    assert thumb.content_type == "image/png"
    assert Image.open(io.BytesIO(thumb.body)).size == (320, 240)

    if display_name_missing:
        pytest.xfail(f"PUT /profile/{{userId}}/displayname is not built yet: {named!r}")
    shown = expect(bob, await bob.get_displayname(alice.user_id), nio.ProfileGetDisplayNameResponse)
    assert shown.displayname == "Alice with pictures"
