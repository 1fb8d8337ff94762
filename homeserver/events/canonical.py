"""Canonical JSON: the exact bytes that hashes and signatures cover."""

from __future__ import annotations

import json
from typing import Any

import canonicaljson


def encode(value: Any) -> bytes:
    """Canonical JSON bytes (sorted keys, no whitespace, UTF-8), as Matrix defines."""
    return bytes(canonicaljson.encode_canonical_json(value))


def decode(data: bytes | str) -> Any:
    return json.loads(data)
