"""Password hashing with scrypt (memory-hard, in the standard library).

scrypt with n=2**14, r=8 needs 16 MiB per hash and about 50 ms on one core
here, which is what makes offline guessing expensive. Run it in a thread. The
cost is configurable (registration.password_hash_cost); each hash records its
own N, so hashes made at any cost keep verifying.

Passwords are hashed in Unicode normal form NFKC, as Synapse does: "é" typed
as one code point on one keyboard and as "e" + a combining accent on another
is the same password.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import unicodedata

DEFAULT_COST = 14  # N = 2**14
_R, _P = 8, 1
_MAXMEM = 64 * 1024 * 1024


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=32
    )


def hash_password_sync(password: str, cost: int = DEFAULT_COST) -> str:
    """The stored form of `password`, with scrypt's N = 2**cost (kept in the hash)."""
    n = 2**cost
    salt = os.urandom(16)
    digest = _derive(unicodedata.normalize("NFKC", password), salt, n, _R, _P)
    encoded_salt = base64.b64encode(salt).decode()
    encoded_digest = base64.b64encode(digest).decode()
    return f"scrypt${n}${_R}${_P}${encoded_salt}${encoded_digest}"


def verify_password_sync(password: str, stored: str) -> bool:
    normalised = unicodedata.normalize("NFKC", password)
    # Hashes made before normalisation hold the password as it was typed.
    candidates = [normalised] if normalised == password else [normalised, password]
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        return any(
            hmac.compare_digest(
                _derive(candidate, base64.b64decode(salt), int(n), int(r), int(p)), expected
            )
            for candidate in candidates
        )
    except (ValueError, TypeError):
        return False


async def hash_password(password: str, cost: int = DEFAULT_COST) -> str:
    return await asyncio.to_thread(hash_password_sync, password, cost)


async def verify_password(password: str, stored: str | None, cost: int = DEFAULT_COST) -> bool:
    if stored is None:
        # Spend the same time for unknown users so timing does not reveal them.
        await asyncio.to_thread(hash_password_sync, password, cost)
        return False
    return await asyncio.to_thread(verify_password_sync, password, stored)
