"""The content repository: uploads, reserved (asynchronous) uploads, downloads, thumbnails.

What is where:
- the bytes: on disk, in a `MediaStore` (streamed in and out, never whole in memory);
- the record of each file: a `com.linkchat.media` event in the uploader's
  account chain, appended after the bytes are safely on disk; its projection,
  the `media` table, is what downloads read. A file without a record is
  unreachable (and removed when the record cannot be written);
- reservations (`POST /_matrix/media/v1/create`): rows in
  `media_reservations`, outside the log, until their upload arrives.

A download of a reserved media ID waits (up to `timeout_ms`) for its upload.
It is woken by the change the upload's append publishes for the uploader, in
this process or another, never by polling.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterable, Iterable
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import asyncpg

from homeserver.clock import now_ms
from homeserver.errors import (
    MatrixError,
    forbidden,
    invalid_param,
    limit_exceeded,
    not_found,
    too_large,
)
from homeserver.events import types
from homeserver.events.model import Draft, JsonDict
from homeserver.log.appender import Appender
from homeserver.media import thumbnails
from homeserver.media.headers import essence
from homeserver.media.storage import MediaStore, Written, place_file, remove_file
from homeserver.media.thumbnails import ThumbnailSpec
from homeserver.media.uris import MxcUri
from homeserver.ratelimit.limiter import Action, RateLimiter
from homeserver.store import media as media_store
from homeserver.store.media import MediaRow

log = logging.getLogger(__name__)

# secrets.token_urlsafe(18): 24 characters of A-Za-z0-9_-, 144 random bits.
MEDIA_ID_BYTES = 18
# The spec recommends 24 hours for an unused reserved media ID.
UNUSED_EXPIRY_MS = 24 * 60 * 60 * 1000
# Reserved media IDs a user may hold without uploading to them (spec: "should limit").
MAX_PENDING_UPLOADS = 10
# timeout_ms of a download waiting for a reserved upload: the spec's default, and our cap.
DEFAULT_WAIT_MS = 20_000
MAX_WAIT_MS = 60_000
# A file name is stored in the upload's event, which is at most 64 KiB.
MAX_FILENAME_BYTES = 1024
# Thumbnails rendered at once by this process (Pillow work is CPU-bound).
THUMBNAIL_WORKERS = 2


class Waiter(Protocol):
    async def wait(self, seconds: float) -> bool: ...


W = TypeVar("W", bound=Waiter)


class UserWatch(Protocol[W]):
    """Wakes a subscriber when a change naming the user is committed (sync's Notifier)."""

    def subscribe(self, user_id: str, rooms: Iterable[str]) -> W: ...

    def unsubscribe(self, waiter: W) -> None: ...


@dataclass(frozen=True, slots=True)
class MediaFile:
    record: MediaRow
    path: Path


@dataclass(frozen=True, slots=True)
class Thumbnail:
    path: Path
    content_type: str


def new_media_id() -> str:
    return secrets.token_urlsafe(MEDIA_ID_BYTES)


def check_filename(filename: str | None) -> str | None:
    """The `filename` of an upload as it will be stored (None: none given)."""
    if not filename:
        return None
    if "\x00" in filename:
        raise invalid_param("filename may not contain U+0000.")
    try:
        encoded = filename.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid_param("filename is not valid UTF-8.") from None
    if len(encoded) > MAX_FILENAME_BYTES:
        raise invalid_param(f"filename is longer than {MAX_FILENAME_BYTES} bytes.")
    return filename


def not_yet_uploaded() -> MatrixError:
    return MatrixError(504, "M_NOT_YET_UPLOADED", "Content has not yet been uploaded")


def cannot_overwrite() -> MatrixError:
    return MatrixError(409, "M_CANNOT_OVERWRITE_MEDIA", "Media already uploaded")


@dataclass(eq=False)
class MediaService:
    pool: asyncpg.Pool
    appender: Appender
    server_name: str
    store: MediaStore
    watch: UserWatch[Any]
    limiter: RateLimiter
    _: KW_ONLY
    max_upload_bytes: int
    allow_unauthenticated_download: bool = False
    unused_expiry_ms: int = UNUSED_EXPIRY_MS
    max_pending_uploads: int = MAX_PENDING_UPLOADS
    _thumbnail_slots: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(THUMBNAIL_WORKERS), init=False, repr=False
    )
    _rendering: dict[Path, asyncio.Task[None]] = field(default_factory=dict, init=False, repr=False)

    def mxc(self, media_id: str) -> MxcUri:
        return MxcUri(self.server_name, media_id)

    # Uploads

    async def _admit(self, user_id: str, declared_length: int | None) -> None:
        """Refuse an upload over the size limit or the uploader's byte budget, before reading it."""
        if declared_length is None:
            return  # sized while streaming, and charged once written (_charge)
        if declared_length > self.max_upload_bytes:
            raise too_large(f"Cannot upload files larger than {self.max_upload_bytes} bytes")
        await self.limiter.limit_user(Action.MEDIA_UPLOAD_BYTES, user_id, declared_length)

    async def _charge(self, user_id: str, declared_length: int | None, written: Written) -> None:
        # Without a Content-Length the size is known only now: it is taken even
        # beyond the budget, and the uploader's next upload waits for it.
        if declared_length is None:
            await self.limiter.charge_user(Action.MEDIA_UPLOAD_BYTES, user_id, written.size)

    async def upload(
        self,
        user_id: str,
        content_type: str,
        filename: str | None,
        chunks: AsyncIterable[bytes],
        declared_length: int | None,
    ) -> MxcUri:
        """Store a new file and record it; its `mxc://` URI.

        `declared_length`: the request's Content-Length, None when streamed without one.
        """
        await self._admit(user_id, declared_length)
        media_id = new_media_id()
        written = await self.store.write(chunks, self.max_upload_bytes, media_id)
        await self._charge(user_id, declared_length, written)
        await self._record(user_id, media_id, content_type, filename, written)
        return self.mxc(media_id)

    async def create(self, user_id: str) -> tuple[MxcUri, int]:
        """Reserve a media ID for a later upload; its URI and when it expires unused."""
        now = now_ms()
        media_id = new_media_id()
        expires = now + self.unused_expiry_ms
        async with self.pool.acquire() as conn:
            await media_store.delete_expired_reservations(conn, now)
            pending = await media_store.pending_reservations(conn, user_id, now)
            if pending >= self.max_pending_uploads:
                raise limit_exceeded(
                    60.0,
                    f"You have {pending} media IDs waiting for an upload; upload to them first.",
                )
            await media_store.reserve(conn, media_id, user_id, now, expires)
        return self.mxc(media_id), expires

    async def upload_reserved(
        self,
        user_id: str,
        server_name: str,
        media_id: str,
        content_type: str,
        filename: str | None,
        chunks: AsyncIterable[bytes],
        declared_length: int | None,
    ) -> None:
        """Upload to a media ID reserved by `create`: only by its creator, only once."""
        if server_name != self.server_name:
            raise not_found("Unknown media ID")
        await self._admit(user_id, declared_length)
        now = now_ms()
        async with self.pool.acquire() as conn:
            existing = await media_store.media(conn, media_id)
            if existing is not None:
                if existing.user_id != user_id:
                    raise forbidden("This media ID was created by another user.")
                raise cannot_overwrite()
            reservation = await media_store.reservation(conn, media_id)
            if reservation is None or reservation.expires_ts <= now:
                raise not_found("Unknown media ID")
            if reservation.user_id != user_id:
                raise forbidden("This media ID was created by another user.")
            if reservation.claimed or not await media_store.claim(conn, media_id, user_id, now):
                raise MatrixError(
                    409, "M_CANNOT_OVERWRITE_MEDIA", "An upload to this media ID is in progress."
                )
        try:
            written = await self.store.write(chunks, self.max_upload_bytes, media_id)
            await self._charge(user_id, declared_length, written)
            await self._record(user_id, media_id, content_type, filename, written)
        except BaseException:
            async with self.pool.acquire() as conn:
                await media_store.release(conn, media_id)
            raise
        async with self.pool.acquire() as conn:
            await media_store.delete_reservation(conn, media_id)

    async def _record(
        self,
        user_id: str,
        media_id: str,
        content_type: str,
        filename: str | None,
        written: Written,
    ) -> None:
        content: JsonDict = {
            "media_id": media_id,
            "content_type": content_type,
            "size": written.size,
            "sha256": written.sha256,
            "created_ts": now_ms(),
        }
        if filename is not None:
            content["filename"] = filename
        try:
            await self.appender.append(Draft(user_id, user_id, types.MEDIA, content))
        except BaseException:
            # Without its record the file is unreachable: do not keep it.
            await self.store.remove(media_id)
            raise

    # Downloads

    async def find(self, server_name: str, media_id: str, wait_ms: int = 0) -> MediaFile:
        """The record and bytes of a file of ours, waiting up to `wait_ms` for a reserved upload."""
        if server_name != self.server_name:
            # Not federated: no other server's media can be fetched through us.
            raise not_found("Media not found: this server does not fetch remote media.")
        record = await self._wait_for(media_id, min(max(wait_ms, 0), MAX_WAIT_MS))
        path = self.store.path(media_id)
        if not await self.store.exists(path):
            log.error("media %s is recorded but its file %s is missing", media_id, path)
            raise not_found("Media not found")
        return MediaFile(record, path)

    async def _wait_for(self, media_id: str, wait_ms: int) -> MediaRow:
        async with self.pool.acquire() as conn:
            record = await media_store.media(conn, media_id)
            reservation = (
                None if record is not None else await media_store.reservation(conn, media_id)
            )
        if record is not None:
            return record
        if reservation is None or reservation.expires_ts <= now_ms():
            raise not_found("Media not found")
        deadline = time.monotonic() + wait_ms / 1000
        # Subscribe before reading, so an upload committed in between still wakes us.
        waiter = self.watch.subscribe(reservation.user_id, ())
        try:
            while True:
                async with self.pool.acquire() as conn:
                    record = await media_store.media(conn, media_id)
                if record is not None:
                    return record
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise not_yet_uploaded()
                await waiter.wait(remaining)
        finally:
            self.watch.unsubscribe(waiter)

    # Thumbnails

    async def thumbnail(
        self, server_name: str, media_id: str, spec: ThumbnailSpec, wait_ms: int = 0
    ) -> Thumbnail:
        """A thumbnail of an image of ours, rendered once per size and method, then cached."""
        found = await self.find(server_name, media_id, wait_ms)
        source_type = essence(found.record.content_type)
        if source_type not in thumbnails.THUMBNAILABLE:
            raise MatrixError(
                400, "M_UNKNOWN", "Cannot generate thumbnails for the requested content"
            )
        path = self.store.thumbnail_path(media_id, spec.file_name(source_type))
        if not await self.store.exists(path):
            await self._render_once(found.path, source_type, spec, path)
        return Thumbnail(path, spec.output_type(source_type))

    async def _render_once(
        self, source: Path, source_type: str, spec: ThumbnailSpec, path: Path
    ) -> None:
        # Many members of a room ask for the same thumbnail at once: render it once.
        task = self._rendering.get(path)
        if task is None:
            task = asyncio.create_task(self._render(source, source_type, spec, path))
            self._rendering[path] = task
            task.add_done_callback(lambda done: self._rendered(path, done))
        # A client hanging up abandons the wait, not the rendering others may share.
        await asyncio.shield(task)

    def _rendered(self, path: Path, task: asyncio.Task[None]) -> None:
        self._rendering.pop(path, None)
        if not task.cancelled():
            task.exception()  # retrieved: whoever waited has seen it

    async def _render(
        self, source: Path, source_type: str, spec: ThumbnailSpec, path: Path
    ) -> None:
        async with self._thumbnail_slots:
            if await self.store.exists(path):
                return
            await asyncio.to_thread(self.store.tmp.mkdir, parents=True, exist_ok=True)
            temporary = self.store.temporary_path()
            try:
                await asyncio.to_thread(thumbnails.render, source, source_type, spec, temporary)
                await asyncio.to_thread(place_file, temporary, path)
            finally:
                await asyncio.to_thread(remove_file, temporary)
