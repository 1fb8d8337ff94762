"""JSON a client sends (request bodies, inline filters in query strings, the sync
stream's first frame), decoded with the limits of what the server can store."""

from __future__ import annotations

import json
from typing import Any

from homeserver.errors import bad_json, not_json

# Deeper than serde_json's default recursion limit no Rust client could read the
# value back, and far deeper Python's own limit turns parsing into a 500.
MAX_JSON_DEPTH = 128


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _check_string(text: str) -> None:
    # PostgreSQL text cannot hold U+0000, and a lone surrogate ("\ud800") has no
    # UTF-8 form: either would fail deep in a query or an append batch as a 500,
    # failing every other request of that batch with it (synapse#9341).
    if "\x00" in text:
        raise bad_json("Strings may not contain U+0000.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_json("Strings may not contain unpaired surrogates.") from None


def check_values(value: object) -> None:
    """Refuse what JSON allows but the server cannot store: see _check_string, MAX_JSON_DEPTH."""
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            _check_string(item)
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise bad_json(f"JSON may not nest deeper than {MAX_JSON_DEPTH} levels.")
            if isinstance(item, dict):
                for key in item:
                    _check_string(key)
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)


def decode_client_json(raw: str | bytes, what: str = "Content") -> Any:
    """The value `raw` holds: 400 M_NOT_JSON when it is not JSON (NaN and Infinity
    are not), M_BAD_JSON when it nests deeper than MAX_JSON_DEPTH or holds a string
    PostgreSQL cannot store. `what` names it in the error."""
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError):
        raise not_json(f"{what} is not JSON.") from None
    except RecursionError:
        raise bad_json(f"JSON may not nest deeper than {MAX_JSON_DEPTH} levels.") from None
    check_values(value)
    return value
