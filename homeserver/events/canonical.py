"""Canonical JSON: the exact bytes that hashes and signatures cover."""

from __future__ import annotations

import json
from typing import Any

import canonicaljson
import orjson


def encode(value: Any) -> bytes:
    """Canonical JSON bytes (sorted keys, no whitespace, UTF-8), as Matrix defines."""
    return bytes(canonicaljson.encode_canonical_json(value))


def decode(data: bytes | str) -> Any:
    """JSON as logged (or as we wrote it), decoded. orjson is several times faster than
    the standard library, and every event is decoded this way when it is read; what it
    refuses (a lone surrogate escape, a number beyond 64 bits) the standard library
    reads as it always did."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)
