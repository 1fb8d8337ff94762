"""The server's ed25519 keys: the current key signs new events, old public keys verify old ones.

Two files, side by side:

- `signing_key_path` (default `data/signing.key`, mode 0600): the current
  secret key, one line `ed25519 <version> <base64 secret>` (Synapse's format).
- `<signing_key_path>.verify_keys.json`: the key ring, public keys only, each
  with its validity window in milliseconds since the epoch:
  `{"server_name": ..., "verify_keys": {"ed25519:a_x": {"key": ..., "valid_from": 0,
  "expired_ts": null}}}`. An event verifies with the key named in its
  signature only if its `origin_server_ts` lies in `[valid_from, expired_ts)`.

`rotate_key` writes a new secret key and expires the old one (after a grace
period) without ever leaving the two files disagreeing: the new secret goes to
`<signing_key_path>.next` first, then the ring is replaced atomically, then the
new secret replaces the old. `load_key_ring` finishes or discards a rotation
that a crash interrupted. A running server re-reads the files when they
change (`LiveKeyRing`, with `read_key_ring`, which changes nothing), before
each batch it signs.
"""

from __future__ import annotations

import binascii
import errno
import fcntl
import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import nacl.exceptions
from nacl.bindings import crypto_sign_open
from signedjson.key import (
    decode_signing_key_base64,
    decode_verify_key_bytes,
    encode_signing_key_base64,
    encode_verify_key_base64,
    generate_signing_key,
    get_verify_key,
)
from signedjson.sign import SignatureVerifyException, sign_json, verify_signed_json
from signedjson.types import SigningKey, VerifyKey
from unpaddedbase64 import decode_base64

from homeserver.events.canonical import encode
from homeserver.events.model import JsonDict
from homeserver.events.redaction import redact
from homeserver.events.room_versions import LEGACY, EventIdFormat, RoomVersion


@dataclass(frozen=True)
class ServerKey:
    server_name: str
    key: SigningKey

    @property
    def key_id(self) -> str:
        return f"ed25519:{self.key.version}"

    @property
    def verify_key(self) -> VerifyKey:
        return get_verify_key(self.key)

    @property
    def public_key_base64(self) -> str:
        return str(encode_verify_key_base64(self.verify_key))

    def signature_for(
        self, pdu: JsonDict, version: RoomVersion = LEGACY
    ) -> dict[str, dict[str, str]]:
        """Signatures over the redacted form of `pdu`, as Matrix signs events."""
        signed = sign_json(_signable(pdu, version), self.server_name, self.key)
        return signed["signatures"]  # type: ignore[no-any-return]


def _signable(pdu: JsonDict, version: RoomVersion) -> JsonDict:
    redacted = redact(pdu, version)
    # An event ID that is no hash (v1, v2) is part of the event, and signed with it.
    dropped: tuple[str, ...] = ("signatures", "unsigned")
    if version.event_ids is not EventIdFormat.LOCAL:
        dropped += ("event_id",)
    for key in dropped:
        redacted.pop(key, None)
    return redacted


def signable_bytes(pdu: JsonDict, version: RoomVersion = LEGACY) -> bytes:
    """What the signature and the reference hash (event ID) cover: one encoding serves both."""
    return encode(_signable(pdu, version))


def verify_event_signature(
    pdu: JsonDict, server_name: str, verify_key: Any, version: RoomVersion = LEGACY
) -> bool:
    signable = _signable(pdu, version)
    signable["signatures"] = pdu.get("signatures", {})
    try:
        verify_signed_json(signable, server_name, verify_key)
    except SignatureVerifyException:
        return False
    return True


def signature_matches(signed: bytes, signature_base64: str, public_key: bytes) -> bool:
    """An ed25519 signature over bytes already encoded, by a raw 32-byte public key.

    The auditor's hot path: libsodium directly, without the wrappers (~10 µs an event).
    """
    try:
        signature = binascii.a2b_base64(signature_base64 + "=" * (-len(signature_base64) % 4))
        if len(signature) != 64:
            return False
        crypto_sign_open(signature + signed, public_key)
    except (nacl.exceptions.BadSignatureError, binascii.Error, ValueError, TypeError):
        return False
    return True


# --- the key ring -----------------------------------------------------------------------------


class KeyRingError(Exception):
    """The key files are missing, unreadable or disagree; the message says how to fix it."""


@dataclass(frozen=True)
class PublicKey:
    """A public key of the server and the window of `origin_server_ts` it may sign in."""

    key_id: str
    key: str  # unpadded base64, as Matrix publishes keys
    valid_from: int = 0
    expired_ts: int | None = None

    def covers(self, ts: int) -> bool:
        return self.valid_from <= ts and (self.expired_ts is None or ts < self.expired_ts)

    def verify_key(self) -> VerifyKey:
        algorithm, _, version = self.key_id.partition(":")
        return decode_verify_key_bytes(f"{algorithm}:{version}", decode_base64(self.key))

    def as_json(self) -> JsonDict:
        return {"key": self.key, "valid_from": self.valid_from, "expired_ts": self.expired_ts}

    def describe(self) -> str:
        """`ID KEY valid_from MS current` (or `expired_ts MS`): a line of `keys list`."""
        expiry = "current" if self.expired_ts is None else f"expired_ts {self.expired_ts}"
        return f"{self.key_id} {self.key} valid_from {self.valid_from} {expiry}"


@dataclass(frozen=True)
class KeyRing:
    """The current signing key and every public key the server ever signed with."""

    current: ServerKey
    keys: Mapping[str, PublicKey]

    @property
    def server_name(self) -> str:
        return self.current.server_name

    @property
    def old_keys(self) -> list[PublicKey]:
        return [key for key_id, key in self.keys.items() if key_id != self.current.key_id]


def ring_path(key_path: Path) -> Path:
    return key_path.with_name(key_path.name + ".verify_keys.json")


def _next_path(key_path: Path) -> Path:
    return key_path.with_name(key_path.name + ".next")


def _public_key_of(key: ServerKey, valid_from: int = 0) -> PublicKey:
    return PublicKey(key.key_id, key.public_key_base64, valid_from)


def public_keys_from_json(document: Mapping[str, Any]) -> dict[str, PublicKey]:
    """Public keys from a key ring file, an export header or a `/_matrix/key/v2/server` answer."""
    found: dict[str, PublicKey] = {}
    for section in ("old_verify_keys", "verify_keys"):
        entries = document.get(section) or {}
        if not isinstance(entries, Mapping):
            raise KeyRingError(f"{section} is not an object")
        for key_id, entry in entries.items():
            if not isinstance(entry, Mapping) or not isinstance(entry.get("key"), str):
                raise KeyRingError(f"{section}.{key_id} has no key")
            valid_from = entry.get("valid_from", 0)
            expired_ts = entry.get("expired_ts")
            if not isinstance(valid_from, int) or not (
                expired_ts is None or isinstance(expired_ts, int)
            ):
                raise KeyRingError(
                    f"{section}.{key_id}: valid_from and expired_ts must be integers"
                )
            found[key_id] = PublicKey(key_id, entry["key"], valid_from, expired_ts)
    return found


def _read_secret(path: Path, server_name: str) -> ServerKey:
    try:
        algorithm, version, secret = path.read_text().split()[:3]
    except ValueError:
        raise KeyRingError(f"{path}: expected one line `ed25519 <version> <key>`") from None
    return ServerKey(server_name, decode_signing_key_base64(algorithm, version, secret))


def _write_private(path: Path, key: SigningKey) -> None:
    """Write a secret key file, mode 0600, durably; fails if it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"ed25519 {key.version} {encode_signing_key_base64(key)}\n")
        handle.flush()
        os.fsync(handle.fileno())


def _read_ring(path: Path) -> dict[str, PublicKey]:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as error:
        raise KeyRingError(f"{path}: not JSON ({error})") from None
    return public_keys_from_json(document)


def _write_ring(path: Path, server_name: str, keys: Mapping[str, PublicKey]) -> None:
    document = {
        "server_name": server_name,
        "verify_keys": {key_id: key.as_json() for key_id, key in sorted(keys.items())},
    }
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w") as handle:
        handle.write(json.dumps(document, indent=2) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _sync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _locked(key_path: Path) -> Iterator[bool]:
    """Serialise key-file changes between processes sharing the files (start, rotate).

    Yields False, without a lock, when the key's directory is read-only (a
    Kubernetes Secret, a read-only mount): nothing here can change the files
    then, and whoever replaces them (the kubelet) does so atomically.
    """
    try:
        key_path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(key_path.with_name(key_path.name + ".lock"), "a")
    except OSError as error:
        if error.errno not in _READ_ONLY:
            raise
        lock = None
    if lock is None:
        yield False
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


def _finish_interrupted_rotation(key_path: Path, server_name: str) -> None:
    """A `.next` key is the new key of a rotation: keep it if the ring names it current."""
    next_path = _next_path(key_path)
    if not next_path.exists():
        return
    candidate = _read_secret(next_path, server_name)
    recorded = _read_ring(ring_path(key_path)).get(candidate.key_id)
    if recorded is not None and recorded.expired_ts is None:
        os.replace(next_path, key_path)
        _sync_directory(key_path.parent)
    else:
        next_path.unlink()  # the ring never recorded it: the rotation did not happen


def load_key_ring(key_path: Path, server_name: str, now_ms: int | None = None) -> KeyRing:
    """The key ring at `key_path`; on first start, a new key (valid from the beginning).

    In a read-only directory the files are only read: they must be there and agree
    (`homeserver keys generate` makes them).
    """
    with _locked(key_path) as writable:
        if not writable:
            return _read_consistent(key_path, server_name)
        _finish_interrupted_rotation(key_path, server_name)
        if not key_path.exists():
            _write_private(key_path, generate_signing_key("a_" + os.urandom(3).hex()))
        current = _read_secret(key_path, server_name)
        keys = _read_ring(ring_path(key_path))
        recorded = keys.get(current.key_id)
        if recorded is None:
            # A key file without a ring (written before rings existed, or put in
            # place by hand): it becomes the current key from now on, and a key
            # still open in the ring closes now.
            stamp = _now_ms() if now_ms is None else now_ms
            valid_from = stamp if keys else 0
            for key_id, key in list(keys.items()):
                if key.expired_ts is None:
                    keys[key_id] = replace(key, expired_ts=stamp)
            keys[current.key_id] = _public_key_of(current, valid_from)
            _write_ring(ring_path(key_path), server_name, keys)
        else:
            _check_current(key_path, current, recorded)
    return KeyRing(current, keys)


def _check_current(key_path: Path, current: ServerKey, recorded: PublicKey) -> None:
    if recorded.expired_ts is not None:
        raise KeyRingError(
            f"{key_path}: the signing key {current.key_id} expired at {recorded.expired_ts}"
            " in the key ring; run `homeserver keys rotate` for a new one"
        )
    if recorded.key != current.public_key_base64:
        raise KeyRingError(f"{key_path}: the key ring has another public key for {current.key_id}")


def read_key_ring(key_path: Path, server_name: str) -> KeyRing:
    """The key ring as the files hold it, changing nothing: a running server's re-read.

    Refused (KeyRingError) while the files disagree, as when the ring was copied
    to this machine before the key, or a rotation was cut off half-way (the next
    start or `homeserver keys rotate` finishes it).
    """
    with _locked(key_path):
        return _read_consistent(key_path, server_name)


def _read_consistent(key_path: Path, server_name: str) -> KeyRing:
    if not key_path.exists():
        raise KeyRingError(
            f"no signing key at {key_path}, and it cannot be made there (read-only):"
            " make one with `homeserver keys generate` and put both files in place"
        )
    current = _read_secret(key_path, server_name)
    keys = _read_ring(ring_path(key_path))
    recorded = keys.get(current.key_id)
    if recorded is None:
        raise KeyRingError(f"{ring_path(key_path)} does not hold the key {current.key_id}")
    _check_current(key_path, current, recorded)
    return KeyRing(current, keys)


def load_or_create_key(path: Path, server_name: str) -> ServerKey:
    """The current signing key at `path`, creating it (mode 0600) on first start."""
    return load_key_ring(path, server_name).current


def read_public_keys(key_path: Path) -> dict[str, PublicKey]:
    """Every public key with its window, without creating anything (for the auditor)."""
    keys = _read_ring(ring_path(key_path))
    if keys:
        return keys
    if not key_path.exists():
        raise KeyRingError(f"no signing key at {key_path} and no key ring at {ring_path(key_path)}")
    return {(key := _read_secret(key_path, "")).key_id: _public_key_of(key)}


def public_keys_oldest_first(key_path: Path) -> list[PublicKey]:
    """Every key the server signed with, in the order they came into use."""
    return sorted(read_public_keys(key_path).values(), key=lambda key: key.valid_from)


def rotate_key(key_path: Path, server_name: str, now_ms: int, grace_ms: int) -> KeyRing:
    """A new current key valid from `now_ms`; the old one expires at `now_ms + grace_ms`."""
    if grace_ms < 0:
        raise KeyRingError("the grace period cannot be negative")
    ring = load_key_ring(key_path, server_name, now_ms)
    with _locked(key_path):
        keys = dict(_read_ring(ring_path(key_path)))
        old = keys[ring.current.key_id]
        while True:
            new = ServerKey(server_name, generate_signing_key("a_" + os.urandom(3).hex()))
            if new.key_id not in keys:
                break
        next_path = _next_path(key_path)
        next_path.unlink(missing_ok=True)
        _write_private(next_path, new.key)
        keys[old.key_id] = replace(old, expired_ts=now_ms + grace_ms)
        keys[new.key_id] = _public_key_of(new, now_ms)
        _write_ring(ring_path(key_path), server_name, keys)  # the rotation happens here
        os.replace(next_path, key_path)
        _sync_directory(key_path.parent)
    return KeyRing(new, keys)


def _now_ms() -> int:
    return int(time.time() * 1000)
