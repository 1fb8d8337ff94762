"""Spec: "Content repository" (upload, create + upload, download, thumbnail, config)."""

from __future__ import annotations

import io
import json
import os
from collections.abc import AsyncIterator
from typing import Any, NamedTuple
from urllib.parse import unquote

import aiohttp
import pytest
from multidict import CIMultiDictProxy
from PIL import Image
from yarl import URL

from sytest_lite.client import SERVER_NAME, Registered, assert_error, q

UPLOAD = "/_matrix/media/v3/upload"
CREATE = "/_matrix/media/v1/create"
MEDIA = "/_matrix/client/v1/media"
LEGACY = "/_matrix/media/v3"


class Reply(NamedTuple):
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Media:
    """Raw-bytes requests to the media endpoints."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")

    async def request(
        self,
        method: str,
        path: str,
        who: Registered | None = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if who is not None:
            sent["Authorization"] = f"Bearer {who.access_token}"
        url = URL(self._base_url + path, encoded=True)
        async with self._session.request(
            method, url, data=data, headers=sent, params=params
        ) as resp:
            return Reply(resp.status, resp.headers, await resp.read())

    async def upload(
        self, who: Registered, data: bytes, content_type: str, filename: str | None = None
    ) -> str:
        params = {"filename": filename} if filename is not None else None
        reply = await self.request(
            "POST", UPLOAD, who, data, {"Content-Type": content_type}, params
        )
        assert reply.status == 200, reply
        uri = reply.json()["content_uri"]
        assert isinstance(uri, str) and uri.startswith(f"mxc://{SERVER_NAME}/"), uri
        return uri


@pytest.fixture
async def media(base_url: str) -> AsyncIterator[Media]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield Media(session, base_url)


def _path(uri: str) -> str:
    return uri.removeprefix("mxc://")


def _png(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "purple").save(out, "PNG")
    return out.getvalue()


async def test_upload_then_download_gives_the_same_bytes_name_and_type(
    media: Media, alice: Registered, bob: Registered
) -> None:
    data = os.urandom(1_500_000)
    uri = await media.upload(alice, data, "application/x-tar", "backup.tar")
    reply = await media.request("GET", f"{MEDIA}/download/{_path(uri)}", bob)
    assert reply.status == 200
    assert reply.body == data
    assert reply.headers["Content-Type"] == "application/x-tar"
    assert reply.headers["Content-Disposition"] == 'attachment; filename="backup.tar"'
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in reply.headers["Content-Security-Policy"]


async def test_download_overriding_the_file_name(media: Media, alice: Registered) -> None:
    uri = await media.upload(alice, _png((8, 8)), "image/png", "a.png")
    reply = await media.request("GET", f"{MEDIA}/download/{_path(uri)}/{q('b é.png')}", alice)
    assert reply.status == 200
    disposition = reply.headers["Content-Disposition"]
    assert disposition.startswith("inline; filename*=utf-8''")
    assert unquote(disposition.split("''", 1)[1]) == "b é.png"


async def test_file_name_with_quotes_and_newlines_cannot_inject_headers(
    media: Media, alice: Registered
) -> None:
    name = 'evil"\r\nSet-Cookie: x=1.txt'
    uri = await media.upload(alice, b"x", "text/plain", name)
    reply = await media.request("GET", f"{MEDIA}/download/{_path(uri)}", alice)
    assert reply.status == 200
    assert "Set-Cookie" not in reply.headers
    disposition = reply.headers["Content-Disposition"]
    assert unquote(disposition.split("''", 1)[1]) == name


async def test_authenticated_download_without_a_token_is_refused(
    media: Media, alice: Registered
) -> None:
    uri = await media.upload(alice, b"x", "text/plain")
    reply = await media.request("GET", f"{MEDIA}/download/{_path(uri)}")
    assert_error(reply.status, reply.json(), 401, "M_MISSING_TOKEN")


async def test_legacy_unauthenticated_download_is_off_by_default(
    media: Media, alice: Registered
) -> None:
    uri = await media.upload(alice, b"not for strangers", "text/plain")
    reply = await media.request("GET", f"{LEGACY}/download/{_path(uri)}")
    assert_error(reply.status, reply.json(), 404, "M_NOT_FOUND")
    reply = await media.request("GET", f"{MEDIA}/download/{_path(uri)}", alice)
    assert reply.status == 200 and reply.body == b"not for strangers"


async def test_create_then_upload_once(media: Media, alice: Registered, bob: Registered) -> None:
    created = await media.request(
        "POST", CREATE, alice, b"{}", {"Content-Type": "application/json"}
    )
    assert created.status == 200
    body = created.json()
    assert isinstance(body["unused_expires_at"], int)
    put = f"{UPLOAD}/{_path(body['content_uri'])}"
    text = {"Content-Type": "text/plain"}

    reply = await media.request("PUT", put, bob, b"not yours", text)
    assert_error(reply.status, reply.json(), 403, "M_FORBIDDEN")
    reply = await media.request("PUT", put, alice, b"first", text)
    assert (reply.status, reply.json()) == (200, {})
    reply = await media.request("PUT", put, alice, b"second", text)
    assert_error(reply.status, reply.json(), 409, "M_CANNOT_OVERWRITE_MEDIA")

    got = await media.request("GET", f"{MEDIA}/download/{_path(body['content_uri'])}", bob)
    assert got.body == b"first"


async def test_download_of_created_but_empty_media_times_out(
    media: Media, alice: Registered
) -> None:
    created = await media.request("POST", CREATE, alice)
    uri = created.json()["content_uri"]
    reply = await media.request(
        "GET", f"{MEDIA}/download/{_path(uri)}", alice, params={"timeout_ms": "100"}
    )
    assert_error(reply.status, reply.json(), 504, "M_NOT_YET_UPLOADED")


async def test_thumbnail_scale_and_crop(media: Media, alice: Registered) -> None:
    uri = await media.upload(alice, _png((800, 600)), "image/png")
    for method, expected in (("scale", (320, 240)), ("crop", (96, 96))):
        width, height = (320, 240) if method == "scale" else (96, 96)
        reply = await media.request(
            "GET",
            f"{MEDIA}/thumbnail/{_path(uri)}",
            alice,
            params={"width": str(width), "height": str(height), "method": method},
        )
        assert reply.status == 200
        assert reply.headers["Content-Type"] == "image/png"
        assert reply.headers["Content-Disposition"].startswith("inline")
        assert Image.open(io.BytesIO(reply.body)).size == expected


async def test_thumbnail_of_a_text_file_is_refused(media: Media, alice: Registered) -> None:
    uri = await media.upload(alice, b"hello", "text/plain")
    reply = await media.request(
        "GET", f"{MEDIA}/thumbnail/{_path(uri)}", alice, params={"width": "32", "height": "32"}
    )
    assert_error(reply.status, reply.json(), 400, "M_UNKNOWN")


async def test_media_config(media: Media, alice: Registered) -> None:
    reply = await media.request("GET", f"{MEDIA}/config", alice)
    assert reply.status == 200
    size = reply.json()["m.upload.size"]
    assert isinstance(size, int) and size > 0


async def test_unknown_and_malformed_media_ids(media: Media, alice: Registered) -> None:
    reply = await media.request("GET", f"{MEDIA}/download/{SERVER_NAME}/DoesNotExist", alice)
    assert_error(reply.status, reply.json(), 404, "M_NOT_FOUND")
    reply = await media.request("GET", f"{MEDIA}/download/{SERVER_NAME}/not%2Bvalid", alice)
    assert_error(reply.status, reply.json(), 400, "M_INVALID_PARAM")
    reply = await media.request("GET", f"{MEDIA}/download/other.example/abc", alice)
    assert_error(reply.status, reply.json(), 404, "M_NOT_FOUND")
