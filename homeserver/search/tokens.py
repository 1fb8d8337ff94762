"""Opaque paging tokens: `next_batch` of /search and `since` of /publicRooms.

A token is URL-safe base64 of a small JSON object naming where the last page
stopped (a keyset, never an offset), so pages chain without duplicates however
many events or rooms arrive meanwhile. Anything that does not decode to the
expected shape is 400 M_INVALID_PARAM.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

from homeserver.errors import MatrixError, invalid_param
from homeserver.events.client_json import decode_client_json

MAX_TOKEN_CHARS = 2048
# Stream positions and counts fit a BIGINT; anything larger is not one of ours.
MAX_INT = 2**63 - 1


def encode_token(value: dict[str, Any]) -> str:
    text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_token(token: str, what: str) -> dict[str, Any]:
    """The object a token carries; 400 M_INVALID_PARAM naming `what` if it is not one."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise _bad(what)
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        # The client JSON decoder: a token is client input, and one nesting past the
        # recursion limit or carrying U+0000 on to a query must not be a 500.
        value = decode_client_json(raw)
    except (binascii.Error, ValueError, MatrixError):
        raise _bad(what) from None
    if not isinstance(value, dict):
        raise _bad(what)
    return value


def _bad(what: str) -> MatrixError:
    return invalid_param(f"Invalid {what} token.")


def int_field(value: dict[str, Any], key: str, what: str) -> int:
    found = value.get(key)
    if not isinstance(found, int) or isinstance(found, bool) or not 0 <= found <= MAX_INT:
        raise _bad(what)
    return found


def rank_field(value: dict[str, Any], key: str, what: str) -> float:
    """A search rank: a finite number a PostgreSQL `real` holds (ts_rank is 0..1)."""
    found = value.get(key)
    if not isinstance(found, int | float) or isinstance(found, bool):
        raise _bad(what)
    if not math.isfinite(found) or abs(found) > 1e30:
        raise _bad(what)
    return float(found)


def str_field(value: dict[str, Any], key: str, what: str) -> str:
    found = value.get(key)
    if not isinstance(found, str) or not found:
        raise _bad(what)
    return found
