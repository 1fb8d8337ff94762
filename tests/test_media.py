"""The content repository: what a client uploads is what others download, safely served."""

from __future__ import annotations

import asyncio
import io
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import asyncpg
import pytest
from PIL import Image

from homeserver.events.canonical import decode
from homeserver.media.headers import content_disposition, normalize_content_type
from homeserver.media.uris import MxcUri, is_valid_mxc, parse_mxc
from tests.audit_log import assert_replay_identical
from tests.conftest import AppFactory
from tests.matrix import MatrixClient, User

UPLOAD = "/_matrix/media/v3/upload"
CREATE = "/_matrix/media/v1/create"
CLIENT_MEDIA = "/_matrix/client/v1/media"
LEGACY_MEDIA = "/_matrix/media/v3"


# --- helpers -----------------------------------------------------------------


def _auth(user: User | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}"} if user is not None else {}


async def upload(
    hs: MatrixClient,
    user: User,
    data: bytes | AsyncIterator[bytes],
    content_type: str = "application/octet-stream",
    filename: str | None = None,
    *,
    path: str = UPLOAD,
    method: str = "POST",
) -> tuple[int, Any]:
    params = {"filename": filename} if filename is not None else {}
    headers = {**_auth(user), "Content-Type": content_type}
    async with hs.http.request(method, path, data=data, params=params, headers=headers) as resp:
        return resp.status, await resp.json()


async def upload_ok(
    hs: MatrixClient,
    user: User,
    data: bytes,
    content_type: str = "application/octet-stream",
    filename: str | None = None,
) -> MxcUri:
    status, body = await upload(hs, user, data, content_type, filename)
    assert status == 200, body
    uri = parse_mxc(body["content_uri"])
    assert uri is not None, body
    return uri


class Download:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        import json

        return json.loads(self.body)


async def get(hs: MatrixClient, path: str, user: User | None = None, **params: str) -> Download:
    async with hs.http.get(path, params=params, headers=_auth(user)) as resp:
        return Download(resp.status, resp.headers, await resp.read())


def download_path(uri: MxcUri, file_name: str | None = None, *, base: str = CLIENT_MEDIA) -> str:
    path = f"{base}/download/{uri.server_name}/{uri.media_id}"
    return path + f"/{quote(file_name, safe='')}" if file_name is not None else path


def thumbnail_path(uri: MxcUri, *, base: str = CLIENT_MEDIA) -> str:
    return f"{base}/thumbnail/{uri.server_name}/{uri.media_id}"


def image_bytes(size: tuple[int, int], fmt: str = "PNG", mode: str = "RGB") -> bytes:
    image = Image.new(mode, size, "teal" if mode != "1" else 1)
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def animated_gif(size: tuple[int, int], frames: int = 3) -> bytes:
    images = [Image.new("RGB", size, colour) for colour in ("red", "green", "blue")[:frames]]
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return out.getvalue()


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def chunked(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    """A body without Content-Length: aiohttp sends it chunked."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


# --- uploads and downloads ----------------------------------------------------


async def test_uploaded_file_downloads_byte_for_byte_with_its_name_and_type(
    hs: MatrixClient,
) -> None:
    alice, bob = await hs.register(), await hs.register()
    # Bigger than limits.max_request_bytes (1 MiB): uploads are streamed, not bound by it.
    data = os.urandom(3 * 1024 * 1024 + 17)
    uri = await upload_ok(hs, alice, data, "application/pdf", "War and Peace.pdf")
    assert uri.server_name == "localhost"

    got = await get(hs, download_path(uri), bob)
    assert got.status == 200
    assert got.body == data
    assert got.headers["Content-Type"] == "application/pdf"
    # Not a type the spec lets us serve inline.
    assert got.headers["Content-Disposition"] == 'attachment; filename="War and Peace.pdf"'
    assert got.headers["Content-Security-Policy"].startswith("sandbox;")
    assert "default-src 'none'" in got.headers["Content-Security-Policy"]
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert got.headers["Access-Control-Allow-Origin"] == "*"


async def test_download_with_a_file_name_in_the_path_uses_that_name(hs: MatrixClient) -> None:
    alice = await hs.register()
    uri = await upload_ok(hs, alice, b"hello", "text/plain", "a.txt")
    got = await get(hs, download_path(uri, "other name.txt"), alice)
    assert got.status == 200 and got.body == b"hello"
    assert got.headers["Content-Disposition"] == 'inline; filename="other name.txt"'
    assert got.headers["Content-Type"] == "text/plain; charset=utf-8"
    # A trailing slash (what matrix-nio sends with no file name) serves the stored name.
    got = await get(hs, download_path(uri) + "/", alice)
    assert got.status == 200 and got.headers["Content-Disposition"] == 'inline; filename="a.txt"'


async def test_upload_without_file_name_is_served_without_one(hs: MatrixClient) -> None:
    alice = await hs.register()
    uri = await upload_ok(hs, alice, image_bytes((4, 4)), "image/png")
    got = await get(hs, download_path(uri), alice)
    assert got.headers["Content-Disposition"] == "inline"
    assert got.headers["Content-Type"] == "image/png"


async def test_html_is_never_served_inline(hs: MatrixClient) -> None:
    alice = await hs.register()
    page = b"<html><script>alert(1)</script></html>"
    uri = await upload_ok(hs, alice, page, "text/html", "x.html")
    got = await get(hs, download_path(uri), alice)
    assert got.body == page
    assert got.headers["Content-Disposition"].startswith("attachment;")
    assert got.headers["Content-Security-Policy"].startswith("sandbox;")


@pytest.mark.parametrize(
    "name",
    [
        'quote".txt',
        "new\r\nline: evil=1.txt",
        "back\\slash.txt",
        "semi;colon, comma.txt",
        "naïve café ☕.txt",
        "日本語のファイル.png",
        "'single' and %41 percent.txt",
        "Content-Type: text/html\n\n<script>",
    ],
)
async def test_nasty_file_names_stay_inside_content_disposition(
    hs: MatrixClient, name: str
) -> None:
    alice = await hs.register()
    uri = await upload_ok(hs, alice, b"data", "application/octet-stream", name)
    got = await get(hs, download_path(uri), alice)
    assert got.status == 200 and got.body == b"data"
    header = got.headers["Content-Disposition"]
    assert "\n" not in header and "\r" not in header
    assert got.headers.getall("Content-Disposition") == [header]
    assert got.headers["Content-Type"] == "application/octet-stream"
    kind, _, parameter = header.partition("; ")
    assert kind == "attachment"
    if parameter.startswith("filename*=utf-8''"):
        encoded = parameter.removeprefix("filename*=utf-8''")
        assert all(c.isalnum() or c in "!#$&+-.^_`|~%" for c in encoded), encoded
        assert unquote(encoded) == name
    else:
        assert parameter == f'filename="{name}"'
        assert '"' not in name and "\\" not in name


def test_content_disposition_is_inline_only_for_safe_types() -> None:
    assert content_disposition("image/jpeg", "a.jpg") == 'inline; filename="a.jpg"'
    assert content_disposition("Audio/OGG; codecs=opus", None) == "inline"
    assert content_disposition("image/svg+xml", "a.svg") == 'attachment; filename="a.svg"'
    assert content_disposition("application/javascript", None) == "attachment"
    assert content_disposition("text/plain", "é") == "inline; filename*=utf-8''%C3%A9"


def test_content_type_that_is_not_a_media_type_becomes_octet_stream() -> None:
    assert normalize_content_type(None) == "application/octet-stream"
    assert normalize_content_type("image/png") == "image/png"
    assert normalize_content_type("text/plain; charset=utf-8") == "text/plain; charset=utf-8"
    assert normalize_content_type("not a type") == "application/octet-stream"
    assert normalize_content_type("image/png\x01") == "application/octet-stream"
    assert normalize_content_type("x/" + "y" * 300) == "application/octet-stream"


async def test_range_request_gets_part_of_the_file(hs: MatrixClient) -> None:
    alice = await hs.register()
    data = bytes(range(256)) * 8
    uri = await upload_ok(hs, alice, data)
    headers = {**_auth(alice), "Range": "bytes=10-19"}
    async with hs.http.get(download_path(uri), headers=headers) as resp:
        assert resp.status == 206
        assert await resp.read() == data[10:20]


async def test_chunked_upload_without_content_length_is_stored(hs: MatrixClient) -> None:
    alice = await hs.register()
    data = os.urandom(300_000)
    status, body = await upload(hs, alice, chunked(data), "application/zip", "a.zip")
    assert status == 200, body
    uri = parse_mxc(body["content_uri"])
    assert uri is not None
    assert (await get(hs, download_path(uri), alice)).body == data


async def test_empty_file_round_trips(hs: MatrixClient) -> None:
    alice = await hs.register()
    uri = await upload_ok(hs, alice, b"", "text/plain", "empty.txt")
    got = await get(hs, download_path(uri), alice)
    assert got.status == 200 and got.body == b""


# --- authentication ---------------------------------------------------------


async def test_uploading_and_authenticated_downloads_need_an_access_token(
    hs: MatrixClient,
) -> None:
    alice = await hs.register()
    uri = await upload_ok(hs, alice, b"secret", "text/plain")
    async with hs.http.post(UPLOAD, data=b"x") as resp:
        assert resp.status == 401 and (await resp.json())["errcode"] == "M_MISSING_TOKEN"
    for path in (download_path(uri), thumbnail_path(uri), f"{CLIENT_MEDIA}/config"):
        got = await get(hs, path, width="32", height="32")
        assert got.status == 401, path
        assert got.json()["errcode"] == "M_MISSING_TOKEN"
    bad = {"Authorization": "Bearer nope"}
    async with hs.http.get(download_path(uri), headers=bad) as resp:
        assert resp.status == 401 and (await resp.json())["errcode"] == "M_UNKNOWN_TOKEN"
    # The token may also come as a query parameter (matrix-nio sends it so).
    got = await get(hs, download_path(uri), access_token=alice.token)
    assert got.status == 200 and got.body == b"secret"


async def test_file_of_a_private_room_is_not_served_without_a_token_by_default(
    hs: MatrixClient,
) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice, preset="private_chat")
    uri = await upload_ok(hs, alice, image_bytes((300, 200)), "image/png", "p.png")
    await hs.send(alice, room, {"msgtype": "m.image", "body": "p.png", "url": str(uri)})
    # Whoever learns the URI gets nothing through the legacy, unauthenticated paths.
    for path in (download_path(uri, base=LEGACY_MEDIA), thumbnail_path(uri, base=LEGACY_MEDIA)):
        got = await get(hs, path, width="32", height="32")
        assert got.status == 404, path
        assert got.json()["errcode"] == "M_NOT_FOUND"
    # The authenticated paths still serve it.
    assert (await get(hs, download_path(uri), alice)).status == 200


async def test_unauthenticated_legacy_download_can_be_turned_on_for_old_clients(
    start_app: AppFactory,
) -> None:
    hs = await start_app(media={"allow_unauthenticated_download": True})
    alice = await hs.register()
    uri = await upload_ok(hs, alice, image_bytes((300, 200)), "image/png", "p.png")
    got = await get(hs, download_path(uri, base=LEGACY_MEDIA))
    assert got.status == 200 and got.headers["Content-Disposition"] == 'inline; filename="p.png"'
    thumb = await get(hs, thumbnail_path(uri, base=LEGACY_MEDIA), width="32", height="32")
    assert thumb.status == 200 and thumb.headers["Content-Type"] == "image/png"


async def test_legacy_download_is_refused_even_with_a_token_when_off(
    start_app: AppFactory,
) -> None:
    hs = await start_app(media={"allow_unauthenticated_download": False})
    alice = await hs.register()
    uri = await upload_ok(hs, alice, image_bytes((300, 200)), "image/png")
    for path in (download_path(uri, base=LEGACY_MEDIA), thumbnail_path(uri, base=LEGACY_MEDIA)):
        # Even with a token: the legacy endpoints are frozen, as the spec (1.11) describes.
        got = await get(hs, path, alice, width="32", height="32")
        assert got.status == 404, path
        assert got.json()["errcode"] == "M_NOT_FOUND"
    assert (await get(hs, download_path(uri), alice)).status == 200
    assert (await get(hs, thumbnail_path(uri), alice, width="32", height="32")).status == 200


# --- size limit --------------------------------------------------------------


async def test_upload_over_the_limit_is_refused_and_leaves_no_file(
    start_app: AppFactory, tmp_path: Path
) -> None:
    store = tmp_path / "media"
    hs = await start_app(media={"store_path": store, "max_upload_bytes": 100_000})
    alice = await hs.register()

    # Declared too large: refused before anything is read.
    status, body = await upload(hs, alice, os.urandom(100_001))
    assert (status, body["errcode"]) == (413, "M_TOO_LARGE")
    # Not declared (chunked): refused once the count passes the limit.
    status, body = await upload(hs, alice, chunked(os.urandom(250_000), 10_000))
    assert (status, body["errcode"]) == (413, "M_TOO_LARGE")
    assert files_under(store) == []

    exact = os.urandom(100_000)
    uri = await upload_ok(hs, alice, exact)
    assert [p.name for p in files_under(store)] == [uri.media_id]
    config = await get(hs, f"{CLIENT_MEDIA}/config", alice)
    assert config.json() == {"m.upload.size": 100_000}


async def test_upload_cut_off_by_the_client_leaves_no_file(
    start_app: AppFactory, tmp_path: Path
) -> None:
    store = tmp_path / "media"
    hs = await start_app(media={"store_path": store})
    alice = await hs.register()
    server = hs.http.server
    _reader, writer = await asyncio.open_connection(server.host, server.port)
    head = (
        "POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: localhost\r\n"
        f"Authorization: Bearer {alice.token}\r\nContent-Type: application/octet-stream\r\n"
        "Content-Length: 5000000\r\n\r\n"
    )
    writer.write(head.encode() + os.urandom(2_000_000))
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.close()
    await writer.wait_closed()
    for _ in range(50):
        if files_under(store) == []:
            break
        await asyncio.sleep(0.1)
    assert files_under(store) == []
    # The server carries on.
    uri = await upload_ok(hs, alice, b"next")
    assert (await get(hs, download_path(uri), alice)).body == b"next"


# --- asynchronous uploads ----------------------------------------------------


async def test_created_media_id_is_uploaded_once_by_its_creator(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    before = int(time.time() * 1000)
    created = await hs.ok("POST", CREATE, {}, user=alice)
    uri = parse_mxc(created["content_uri"])
    assert uri is not None and uri.server_name == "localhost"
    day = 24 * 3600 * 1000
    assert before + day <= created["unused_expires_at"] <= int(time.time() * 1000) + day
    put_path = f"{UPLOAD}/{uri.server_name}/{uri.media_id}"

    early = await get(hs, download_path(uri), bob, timeout_ms="0")
    assert early.status == 504 and early.json()["errcode"] == "M_NOT_YET_UPLOADED"

    status, body = await upload(hs, bob, b"bob's", path=put_path, method="PUT")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

    data = os.urandom(2 * 1024 * 1024)
    status, body = await upload(
        hs, alice, data, "image/webp", "w.webp", path=put_path, method="PUT"
    )
    assert (status, body) == (200, {})

    status, body = await upload(hs, alice, b"again", path=put_path, method="PUT")
    assert (status, body["errcode"]) == (409, "M_CANNOT_OVERWRITE_MEDIA")
    status, body = await upload(hs, bob, b"again", path=put_path, method="PUT")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

    got = await get(hs, download_path(uri), bob)
    assert got.body == data
    assert got.headers["Content-Type"] == "image/webp"
    assert got.headers["Content-Disposition"] == 'inline; filename="w.webp"'


async def test_upload_to_a_media_id_nobody_created_is_not_found(hs: MatrixClient) -> None:
    alice = await hs.register()
    for path in (f"{UPLOAD}/localhost/NeverCreated123", f"{UPLOAD}/elsewhere.org/abc"):
        status, body = await upload(hs, alice, b"x", path=path, method="PUT")
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), path
    status, body = await upload(hs, alice, b"x", path=f"{UPLOAD}/localhost/bad.id", method="PUT")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


async def test_download_waits_for_a_reserved_upload(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    uri = parse_mxc((await hs.ok("POST", CREATE, {}, user=alice))["content_uri"])
    assert uri is not None
    waiting = asyncio.create_task(get(hs, download_path(uri), bob, timeout_ms="10000"))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    put_path = f"{UPLOAD}/{uri.server_name}/{uri.media_id}"
    status, _ = await upload(
        hs, alice, b"worth the wait", "text/plain", path=put_path, method="PUT"
    )
    assert status == 200
    got = await asyncio.wait_for(waiting, 5)
    assert got.status == 200 and got.body == b"worth the wait"


async def test_too_many_pending_media_ids_are_refused(hs: MatrixClient) -> None:
    alice = await hs.register()
    for _ in range(10):
        await hs.ok("POST", CREATE, {}, user=alice)
    reply = await hs.request("POST", CREATE, {}, user=alice)
    assert (reply.status, reply.errcode) == (429, "M_LIMIT_EXCEEDED")
    assert reply.body["retry_after_ms"] > 0
    # Somebody else is not affected.
    await hs.ok("POST", CREATE, {}, user=await hs.register())


# --- thumbnails --------------------------------------------------------------


async def _thumbnail(
    hs: MatrixClient, user: User, uri: MxcUri, **params: str
) -> tuple[Download, Image.Image | None]:
    got = await get(hs, thumbnail_path(uri), user, **params)
    image = Image.open(io.BytesIO(got.body)) if got.status == 200 else None
    return got, image


async def test_thumbnails_scale_and_crop_to_the_requested_box(hs: MatrixClient) -> None:
    alice = await hs.register()
    uri = await upload_ok(hs, alice, image_bytes((400, 300)), "image/png", "big.png")

    got, image = await _thumbnail(hs, alice, uri, width="100", height="100", method="scale")
    assert got.status == 200 and image is not None
    assert image.size == (100, 75) and image.format == "PNG"
    assert got.headers["Content-Type"] == "image/png"
    assert got.headers["Content-Disposition"] == 'inline; filename="thumbnail.png"'
    assert got.headers["X-Content-Type-Options"] == "nosniff"

    for box in ((100, 100), (64, 32), (32, 96)):
        got, image = await _thumbnail(
            hs, alice, uri, width=str(box[0]), height=str(box[1]), method="crop"
        )
        assert image is not None and image.size == box, got.headers

    # Never upscaled: a box bigger than the image gives the image's own size.
    got, image = await _thumbnail(hs, alice, uri, width="800", height="600", method="scale")
    assert image is not None and image.size == (400, 300)
    got, image = await _thumbnail(hs, alice, uri, width="1000", height="100", method="crop")
    assert image is not None and image.size == (400, 100)


async def test_jpeg_thumbnail_is_a_jpeg(hs: MatrixClient) -> None:
    alice = await hs.register()
    uri = await upload_ok(hs, alice, image_bytes((640, 480), "JPEG"), "image/jpeg")
    got, image = await _thumbnail(hs, alice, uri, width="320", height="240")
    assert image is not None and image.format == "JPEG" and image.size == (320, 240)
    assert got.headers["Content-Type"] == "image/jpeg"


async def test_thumbnail_of_a_phone_photo_is_upright(hs: MatrixClient) -> None:
    alice = await hs.register()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to display
    out = io.BytesIO()
    Image.new("RGB", (400, 200), "white").save(out, "JPEG", exif=exif)
    uri = await upload_ok(hs, alice, out.getvalue(), "image/jpeg")
    _, image = await _thumbnail(hs, alice, uri, width="100", height="100", method="scale")
    assert image is not None and image.size == (50, 100)


async def test_thumbnail_is_rendered_once_then_served_from_the_cache(
    start_app: AppFactory, tmp_path: Path
) -> None:
    store = tmp_path / "media"
    hs = await start_app(media={"store_path": store})
    alice = await hs.register()
    uri = await upload_ok(hs, alice, image_bytes((500, 500)), "image/png")
    first, _ = await _thumbnail(hs, alice, uri, width="96", height="96", method="crop")
    cached = [p for p in files_under(store) if p.parts[-5] == "thumbnails"]
    assert [p.name for p in cached] == ["96x96-crop.png"]
    stamp = cached[0].stat().st_mtime_ns
    # Many asking at once, and again later: still the one rendering.
    answers = await asyncio.gather(
        *(_thumbnail(hs, alice, uri, width="96", height="96", method="crop") for _ in range(5))
    )
    assert all(got.body == first.body for got, _ in answers)
    assert cached[0].stat().st_mtime_ns == stamp
    assert [p for p in files_under(store) if p.parts[-5] == "thumbnails"] == cached
    assert files_under(store / "tmp") == []


async def test_animated_thumbnail_only_when_asked_for(hs: MatrixClient) -> None:
    alice = await hs.register()
    uri = await upload_ok(hs, alice, animated_gif((200, 200)), "image/gif")
    got, image = await _thumbnail(hs, alice, uri, width="50", height="50", animated="true")
    assert got.headers["Content-Type"] == "image/webp"
    assert image is not None and image.size == (50, 50) and getattr(image, "n_frames", 1) == 3
    got, image = await _thumbnail(hs, alice, uri, width="50", height="50")
    assert got.headers["Content-Type"] == "image/png"
    assert image is not None and getattr(image, "n_frames", 1) == 1


async def test_thumbnail_of_something_that_is_no_image_is_refused(hs: MatrixClient) -> None:
    alice = await hs.register()
    pdf = await upload_ok(hs, alice, b"%PDF-1.4 ...", "application/pdf")
    got, _ = await _thumbnail(hs, alice, pdf, width="32", height="32")
    assert got.status == 400 and got.json()["errcode"] == "M_UNKNOWN"
    fake = await upload_ok(hs, alice, b"not really a png", "image/png")
    got, _ = await _thumbnail(hs, alice, fake, width="32", height="32")
    assert got.status == 400 and got.json()["errcode"] == "M_UNKNOWN"


async def test_decompression_bomb_is_not_thumbnailed(hs: MatrixClient) -> None:
    alice = await hs.register()
    bomb = image_bytes((6000, 6000), mode="1")  # 36 megapixels in a few KiB
    assert len(bomb) < 100_000
    uri = await upload_ok(hs, alice, bomb, "image/png")
    got, _ = await _thumbnail(hs, alice, uri, width="32", height="32")
    assert got.status == 413 and got.json()["errcode"] == "M_TOO_LARGE"


@pytest.mark.parametrize(
    ("params", "errcode"),
    [
        ({"width": "abc", "height": "32"}, "M_INVALID_PARAM"),
        ({"width": "0", "height": "32"}, "M_INVALID_PARAM"),
        ({"width": "-5", "height": "32"}, "M_INVALID_PARAM"),
        ({"width": "32", "height": "99999999"}, "M_INVALID_PARAM"),
        ({"width": "32", "height": "32", "method": "zoom"}, "M_INVALID_PARAM"),
        ({"width": "32", "height": "32", "animated": "yes"}, "M_INVALID_PARAM"),
        ({"height": "32"}, "M_MISSING_PARAM"),
    ],
)
async def test_bad_thumbnail_parameters_are_refused(
    hs: MatrixClient, params: dict[str, str], errcode: str
) -> None:
    alice = await hs.register()
    uri = await upload_ok(hs, alice, image_bytes((64, 64)), "image/png")
    got = await get(hs, thumbnail_path(uri), alice, **params)
    assert got.status == 400 and got.json()["errcode"] == errcode


# --- config, preview, identifiers ---------------------------------------------


async def test_media_config_tells_the_upload_limit(hs: MatrixClient) -> None:
    alice = await hs.register()
    for path in (f"{CLIENT_MEDIA}/config", f"{LEGACY_MEDIA}/config"):
        got = await get(hs, path, alice)
        assert got.status == 200 and got.json() == {"m.upload.size": 50 * 1024 * 1024}


async def test_url_previews_are_not_supported(hs: MatrixClient) -> None:
    alice = await hs.register()
    for path in (f"{CLIENT_MEDIA}/preview_url", f"{LEGACY_MEDIA}/preview_url"):
        got = await get(hs, path, alice, url="https://example.com")
        assert got.status == 404 and got.json()["errcode"] == "M_UNRECOGNIZED"


async def test_unknown_foreign_and_malformed_media_are_refused(hs: MatrixClient) -> None:
    alice = await hs.register()
    uri = await upload_ok(hs, alice, b"mine")
    cases = [
        (f"{CLIENT_MEDIA}/download/localhost/NoSuchMedia", 404, "M_NOT_FOUND"),
        (f"{CLIENT_MEDIA}/download/matrix.org/{uri.media_id}", 404, "M_NOT_FOUND"),
        (f"{CLIENT_MEDIA}/download/localhost/bad.media.id", 400, "M_INVALID_PARAM"),
        (f"{CLIENT_MEDIA}/download/localhost/a%20b", 400, "M_INVALID_PARAM"),
        # Dot segments are resolved away before routing: nothing is served.
        (f"{CLIENT_MEDIA}/download/localhost/%2E%2E", 404, "M_UNRECOGNIZED"),
        (f"{CLIENT_MEDIA}/download/bad_server!/{uri.media_id}", 400, "M_INVALID_PARAM"),
        (f"{LEGACY_MEDIA}/download/localhost/NoSuchMedia", 404, "M_NOT_FOUND"),
        (f"{CLIENT_MEDIA}/thumbnail/localhost/NoSuchMedia", 404, "M_NOT_FOUND"),
    ]
    for path, status, errcode in cases:
        got = await get(hs, path, alice, width="32", height="32")
        assert (got.status, got.json()["errcode"]) == (status, errcode), path


@pytest.mark.parametrize(
    "value",
    [
        "mxc://example.org/abc_DEF-123",
        "mxc://localhost:8448/a",
        "mxc://127.0.0.1/x",
        "mxc://[::1]:80/x",
    ],
)
def test_valid_mxc_uris(value: str) -> None:
    uri = parse_mxc(value)
    assert uri is not None and str(uri) == value


@pytest.mark.parametrize(
    "value",
    [
        None,
        42,
        "",
        "mxc://",
        "mxc://example.org",
        "mxc://example.org/",
        "mxc://example.org/../../etc/passwd",
        "mxc://example.org/a/b",
        "mxc://example.org/a%2Fb",
        "mxc://example.org/a.b",
        "mxc://exa mple.org/a",
        "mxc://example.org:99999999/a",
        "mxc://[not-ipv6]/a",
        "mxc://user@example.org/a",
        "mxc://example.org/a?x=1",
        "https://example.org/a",
        "MXC://example.org/a",
        "mxc://example.org/" + "a" * 256,
    ],
)
def test_invalid_mxc_uris(value: object) -> None:
    assert parse_mxc(value) is None
    assert not is_valid_mxc(value)


# --- the log -------------------------------------------------------------------


async def test_upload_is_recorded_in_the_log_and_replays_into_the_media_table(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    hs = await start_app(dsn=fresh_dsn)
    alice = await hs.register()
    conn = await asyncpg.connect(fresh_dsn)
    try:
        state_before = await conn.fetchval(
            "SELECT count(*) FROM current_state WHERE room_id = $1", alice.user_id
        )
        data = b"the log knows, the log has no bytes"
        uri = await upload_ok(hs, alice, data, "text/plain", "note.txt")
        created = await hs.ok("POST", CREATE, {}, user=alice)
        reserved = parse_mxc(created["content_uri"])
        assert reserved is not None
        put = f"{UPLOAD}/localhost/{reserved.media_id}"
        assert (await upload(hs, alice, b"later", "text/plain", path=put, method="PUT"))[0] == 200

        rows = await conn.fetch(
            "SELECT event_id, json FROM events WHERE room_id = $1 AND type = 'com.linkchat.media'"
            " ORDER BY stream_position",
            alice.user_id,
        )
        pdus = [decode(row["json"]) for row in rows]
        assert [pdu["content"]["media_id"] for pdu in pdus] == [uri.media_id, reserved.media_id]
        first = pdus[0]
        assert "state_key" not in first and first["sender"] == alice.user_id
        import hashlib

        assert first["content"]["sha256"] == hashlib.sha256(data).hexdigest()
        assert first["content"]["size"] == len(data)
        assert first["content"]["filename"] == "note.txt"
        assert first["content"]["content_type"] == "text/plain"
        assert "filename" not in pdus[1]["content"]
        # Not state: the account chain's state does not grow with uploads.
        assert state_before == await conn.fetchval(
            "SELECT count(*) FROM current_state WHERE room_id = $1", alice.user_id
        )
        # The reservation is gone once used.
        assert await conn.fetchval("SELECT count(*) FROM media_reservations") == 0

        live = await conn.fetch("SELECT user_id FROM public.media")
        assert [row["user_id"] for row in live] == [alice.user_id] * 2
    finally:
        await conn.close()
    await assert_replay_identical(fresh_dsn)


async def test_media_record_must_not_be_state(hs: MatrixClient) -> None:
    from homeserver.api.app_keys import APPENDER
    from homeserver.errors import MatrixError
    from homeserver.events.model import Draft

    alice = await hs.register()
    draft = Draft(
        alice.user_id,
        alice.user_id,
        "com.linkchat.media",
        {"media_id": secrets.token_urlsafe(18)},
        state_key="",
    )
    with pytest.raises(MatrixError) as refused:
        await hs.app[APPENDER].append(draft)
    assert refused.value.errcode == "M_FORBIDDEN"


async def test_uploads_do_not_appear_in_sync(hs: MatrixClient) -> None:
    alice = await hs.register()
    first = await hs.sync(alice)
    await upload_ok(hs, alice, b"quiet")
    later = await hs.sync(alice, first["next_batch"])
    assert later.get("rooms", {}).get("join", {}) == {}
    assert alice.user_id not in str(later.get("rooms", {}))


# --- voice messages ----------------------------------------------------------


async def test_voice_message_reaches_the_other_member_with_the_same_bytes(
    hs: MatrixClient,
) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="private_chat", invite=[bob.user_id])
    await hs.join(bob, room)
    voice = b"OggS\x00\x02" + os.urandom(40_000)
    uri = await upload_ok(hs, alice, voice, "audio/ogg", "voice-message.ogg")
    waveform = [0, 120, 512, 1024, 800, 64, 0]
    content = {
        "msgtype": "m.audio",
        "body": "Voice message",
        "url": str(uri),
        "info": {"mimetype": "audio/ogg", "size": len(voice), "duration": 2300},
        "org.matrix.msc1767.audio": {"duration": 2300, "waveform": waveform},
        "org.matrix.msc3245.voice": {},
    }
    event_id = await hs.send(alice, room, content)

    got_event = await hs.ok("GET", f"rooms/{room}/event/{event_id}", user=bob)
    assert got_event["content"] == content
    received = parse_mxc(got_event["content"]["url"])
    assert received == uri
    got = await get(hs, download_path(received), bob)
    assert got.status == 200 and got.body == voice
    assert got.headers["Content-Type"] == "audio/ogg"
    assert got.headers["Content-Disposition"] == 'inline; filename="voice-message.ogg"'
