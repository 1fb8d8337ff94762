"""The content repository over HTTP: upload, create + upload, download, thumbnail, config.

Uploads read `request.content` as a stream, so the app's `client_max_size`
(limits.max_request_bytes, meant for JSON bodies) does not apply to them; the
size limit is media.max_upload_bytes, checked against Content-Length before
reading and counted while streaming. Downloads and thumbnails are served from
disk by `web.FileResponse` (sendfile, Range, ETag).

`/_matrix/client/v1/media/*` requires an access token. The deprecated
`/_matrix/media/v3/download|thumbnail` take none, so they answer 404
M_NOT_FOUND for every file unless media.allow_unauthenticated_download is
true (off by default: a URI alone must not give away a private room's file).
Unlike Synapse's freeze, which keeps serving media uploaded before it, off
means off for old uploads too: they are just as private, and nothing records
which were uploaded while the legacy path was on.
"""

from __future__ import annotations

import re

from aiohttp import web

from homeserver.api.requests import media_path, requester
from homeserver.api.responses import ok
from homeserver.errors import invalid_param, missing_param, not_found, unrecognized
from homeserver.media.headers import download_headers, normalize_content_type, thumbnail_headers
from homeserver.media.service import DEFAULT_WAIT_MS, MediaService, check_filename
from homeserver.media.thumbnails import Method, ThumbnailSpec

MEDIA = web.AppKey("media", MediaService)

routes = web.RouteTableDef()
MEDIA_V3 = "/_matrix/media/v3"
MEDIA_V1 = "/_matrix/media/v1"
CLIENT_MEDIA = "/_matrix/client/v1/media"

# Beyond this a thumbnail request is a mistake (and would name an odd cache file).
MAX_THUMBNAIL_SIDE = 32_768
_DIGITS = re.compile(r"[0-9]{1,9}")


def _int_param(request: web.Request, name: str, default: int | None = None) -> int:
    raw = request.query.get(name)
    if raw is None:
        if default is None:
            raise missing_param(f"Missing query parameter {name!r}.")
        return default
    if not _DIGITS.fullmatch(raw):
        raise invalid_param(f"{name} must be a non-negative integer.")
    return int(raw)


def _bool_param(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "false")
    if raw not in ("true", "false"):
        raise invalid_param(f"{name} must be true or false.")
    return raw == "true"


def _upload_metadata(request: web.Request) -> tuple[str, str | None]:
    content_type = normalize_content_type(request.headers.get("Content-Type"))
    return content_type, check_filename(request.query.get("filename"))


# POST /_matrix/media/v3/upload
@routes.post(MEDIA_V3 + "/upload")
async def upload(request: web.Request) -> web.Response:
    caller = await requester(request)
    media = request.app[MEDIA]
    content_type, filename = _upload_metadata(request)
    uri = await media.upload(
        caller.user_id,
        content_type,
        filename,
        request.content.iter_any(),
        request.content_length,
    )
    return ok({"content_uri": str(uri)})


# POST /_matrix/media/v1/create
@routes.post(MEDIA_V1 + "/create")
async def create(request: web.Request) -> web.Response:
    caller = await requester(request)
    uri, expires_at = await request.app[MEDIA].create(caller.user_id)
    return ok({"content_uri": str(uri), "unused_expires_at": expires_at})


# PUT /_matrix/media/v3/upload/{serverName}/{mediaId}
@routes.put(MEDIA_V3 + "/upload/{server_name}/{media_id}")
async def upload_reserved(request: web.Request) -> web.Response:
    caller = await requester(request)
    server_name, media_id = media_path(request)
    media = request.app[MEDIA]
    content_type, filename = _upload_metadata(request)
    await media.upload_reserved(
        caller.user_id,
        server_name,
        media_id,
        content_type,
        filename,
        request.content.iter_any(),
        request.content_length,
    )
    return ok({})


async def _readable(request: web.Request, authenticated: bool) -> MediaService:
    """The media service, once the caller may read media by this path (legacy or not)."""
    media = request.app[MEDIA]
    if authenticated:
        await requester(request)
    elif not media.allow_unauthenticated_download:
        raise not_found("Not found")
    return media


async def _download(request: web.Request, *, authenticated: bool) -> web.StreamResponse:
    media = await _readable(request, authenticated)
    server_name, media_id = media_path(request)
    file_name = request.match_info.get("file_name")
    if file_name is not None:
        file_name = check_filename(file_name)
    wait_ms = _int_param(request, "timeout_ms", DEFAULT_WAIT_MS)
    found = await media.find(server_name, media_id, wait_ms)
    name = file_name if file_name is not None else found.record.filename
    return web.FileResponse(found.path, headers=download_headers(found.record.content_type, name))


async def _thumbnail(request: web.Request, *, authenticated: bool) -> web.StreamResponse:
    media = await _readable(request, authenticated)
    server_name, media_id = media_path(request)
    width = _int_param(request, "width")
    height = _int_param(request, "height")
    if not (1 <= width <= MAX_THUMBNAIL_SIDE and 1 <= height <= MAX_THUMBNAIL_SIDE):
        raise invalid_param(f"width and height must be between 1 and {MAX_THUMBNAIL_SIDE}.")
    method_name = request.query.get("method", Method.SCALE.value)
    if method_name not in (Method.SCALE.value, Method.CROP.value):
        raise invalid_param("method must be 'scale' or 'crop'.")
    spec = ThumbnailSpec(width, height, Method(method_name), _bool_param(request, "animated"))
    wait_ms = _int_param(request, "timeout_ms", DEFAULT_WAIT_MS)
    thumbnail = await media.thumbnail(server_name, media_id, spec, wait_ms)
    return web.FileResponse(thumbnail.path, headers=thumbnail_headers(thumbnail.content_type))


# GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]
@routes.get(CLIENT_MEDIA + "/download/{server_name}/{media_id}")
@routes.get(CLIENT_MEDIA + "/download/{server_name}/{media_id}/")
@routes.get(CLIENT_MEDIA + "/download/{server_name}/{media_id}/{file_name}")
async def download(request: web.Request) -> web.StreamResponse:
    return await _download(request, authenticated=True)


# GET /_matrix/media/v3/download/{serverName}/{mediaId}[/{fileName}] (deprecated, no auth)
@routes.get(MEDIA_V3 + "/download/{server_name}/{media_id}")
@routes.get(MEDIA_V3 + "/download/{server_name}/{media_id}/")
@routes.get(MEDIA_V3 + "/download/{server_name}/{media_id}/{file_name}")
async def download_unauthenticated(request: web.Request) -> web.StreamResponse:
    return await _download(request, authenticated=False)


# GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}
@routes.get(CLIENT_MEDIA + "/thumbnail/{server_name}/{media_id}")
async def thumbnail(request: web.Request) -> web.StreamResponse:
    return await _thumbnail(request, authenticated=True)


# GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId} (deprecated, no auth)
@routes.get(MEDIA_V3 + "/thumbnail/{server_name}/{media_id}")
async def thumbnail_unauthenticated(request: web.Request) -> web.StreamResponse:
    return await _thumbnail(request, authenticated=False)


# GET /_matrix/client/v1/media/config, /_matrix/media/v3/config
@routes.get(CLIENT_MEDIA + "/config")
@routes.get(MEDIA_V3 + "/config")
async def config(request: web.Request) -> web.Response:
    await requester(request)
    return ok({"m.upload.size": request.app[MEDIA].max_upload_bytes})


# GET /_matrix/client/v1/media/preview_url, /_matrix/media/v3/preview_url
@routes.get(CLIENT_MEDIA + "/preview_url")
@routes.get(MEDIA_V3 + "/preview_url")
async def preview_url(request: web.Request) -> web.Response:
    await requester(request)
    raise unrecognized("URL previews are not supported by this server.")
