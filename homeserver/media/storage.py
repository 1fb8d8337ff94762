"""Media bytes on disk: streamed in, fsynced, renamed into place; never held whole in memory.

Layout under the store root (`media.store_path`):

    local/<id[0:2]>/<id[2:4]>/<id>                 an uploaded file
    thumbnails/<id[0:2]>/<id[2:4]>/<id>/<name>     its cached thumbnails
    tmp/<random>                                   files being written

A file is written to `tmp/` (same file system, so the rename is atomic),
fsynced, then renamed to its place and its directory fsynced: a reader sees a
whole file or none, and a crash leaves at most a stray file in `tmp/`. An
upload over the size limit stops as soon as the limit is passed and its
temporary file is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import shutil
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path

import aiofiles

from homeserver.errors import too_large
from homeserver.media.uris import is_valid_media_id

# Writes are batched to this size: few thread hops per file, bounded memory.
WRITE_BUFFER_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Written:
    size: int
    sha256: str


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _place(temporary: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    os.replace(temporary, destination)
    _fsync_directory(destination.parent)


class MediaStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"

    def _shard(self, kind: str, media_id: str) -> Path:
        if not is_valid_media_id(media_id):
            # Never reached with an ID from a client: the API validates first.
            raise ValueError(f"not a media ID: {media_id!r}")
        return self.root / kind / media_id[0:2] / media_id[2:4] / media_id

    def path(self, media_id: str) -> Path:
        """Where the bytes of `media_id` are."""
        return self._shard("local", media_id)

    def thumbnail_path(self, media_id: str, name: str) -> Path:
        """A cached thumbnail of `media_id`; `name` is made by the thumbnailer (no `/`)."""
        return self._shard("thumbnails", media_id) / name

    def temporary_path(self) -> Path:
        """A fresh name in `tmp/` (same file system as the store, so renames are atomic)."""
        return self.tmp / secrets.token_hex(16)

    async def exists(self, path: Path) -> bool:
        return await asyncio.to_thread(path.is_file)

    async def write(self, chunks: AsyncIterable[bytes], limit: int, media_id: str) -> Written:
        """Stream `chunks` into the file of `media_id`; M_TOO_LARGE past `limit` bytes."""
        await asyncio.to_thread(self.tmp.mkdir, parents=True, exist_ok=True)
        temporary = self.temporary_path()
        digest = hashlib.sha256()
        size = 0
        placed = False
        try:
            async with aiofiles.open(temporary, "wb") as file:
                pending: list[bytes] = []
                pending_size = 0
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise too_large(f"Cannot upload files larger than {limit} bytes")
                    digest.update(chunk)
                    pending.append(chunk)
                    pending_size += len(chunk)
                    if pending_size >= WRITE_BUFFER_BYTES:
                        await file.write(b"".join(pending))
                        pending.clear()
                        pending_size = 0
                if pending:
                    await file.write(b"".join(pending))
                await file.flush()
                await asyncio.to_thread(os.fsync, file.fileno())
            await asyncio.to_thread(_place, temporary, self.path(media_id))
            placed = True
        finally:
            if not placed:
                await asyncio.to_thread(_remove, temporary)
        return Written(size, digest.hexdigest())

    async def remove(self, media_id: str) -> None:
        """Forget the bytes of an upload whose record could not be written."""
        await asyncio.to_thread(_remove, self.path(media_id))

    async def remove_with_thumbnails(self, media_id: str) -> None:
        """Forget a file's bytes and every thumbnail made of it (an admin deleted it)."""
        await asyncio.to_thread(_remove, self.path(media_id))
        await asyncio.to_thread(
            shutil.rmtree, self._shard("thumbnails", media_id), ignore_errors=True
        )


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def place_file(temporary: Path, destination: Path) -> None:
    """Rename a finished temporary file into place durably (for thumbnails, in a thread)."""
    _place(temporary, destination)


def remove_file(path: Path) -> None:
    _remove(path)
