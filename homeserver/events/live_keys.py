"""The key ring of a running server: re-read when `homeserver keys rotate` changes the files.

`refresh` is called before every batch the appender signs and by the key
endpoint. It costs two `stat` calls while the files are unchanged; after a
change it re-reads them (off the event loop, under the rotation's file lock,
so never half-way through a rotation). A process therefore signs with the new
key from its first batch after the rotation, and a batch already being built
then is the only one that can still carry the old key: within any grace
period but `--grace 0`'s.

Files that disagree (a ring copied to this machine before its key, say) are
logged and the key in use is kept until the files change again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from homeserver.events.signing import KeyRing, ServerKey, read_key_ring, ring_path

log = logging.getLogger(__name__)

# What identifies a version of a file: replaced files get a new inode.
Stamp = tuple[int, int, int] | None


def _stamp(path: Path) -> Stamp:
    try:
        found = os.stat(path)
    except OSError:  # missing or unreadable: the re-read says why
        return None
    return found.st_ino, found.st_mtime_ns, found.st_size


class LiveKeyRing:
    def __init__(self, key_path: Path, ring: KeyRing) -> None:
        self._key_path = key_path
        self._ring = ring
        self._seen = self._stamps()
        self._reading: asyncio.Task[None] | None = None

    @property
    def ring(self) -> KeyRing:
        return self._ring

    @property
    def current(self) -> ServerKey:
        return self._ring.current

    def _stamps(self) -> tuple[Stamp, Stamp]:
        return _stamp(self._key_path), _stamp(ring_path(self._key_path))

    async def refresh(self) -> ServerKey:
        """The current key, after re-reading the files if they changed since the last read."""
        if self._stamps() != self._seen:
            # One read at a time; callers arriving meanwhile wait for it.
            if self._reading is None or self._reading.done():
                self._reading = asyncio.ensure_future(self._read())
            await asyncio.shield(self._reading)
        return self._ring.current

    async def _read(self) -> None:
        stamps = self._stamps()  # before reading: a change during the read is seen next time
        try:
            ring = await asyncio.to_thread(read_key_ring, self._key_path, self.current.server_name)
        except Exception as error:  # never stop the appender: keep the key in use
            log.error("still signing with %s: %s", self.current.key_id, error)
        else:
            if ring.current.key_id != self.current.key_id:
                log.info("signing key %s replaces %s", ring.current.key_id, self.current.key_id)
            self._ring = ring
        self._seen = stamps
