"""Values an event may carry: canonical JSON has no floats and only 53-bit integers."""

from __future__ import annotations

from typing import Any

from homeserver.errors import bad_json

MAX_SAFE_INTEGER = 2**53 - 1


def check_event_values(value: Any, path: str = "content") -> None:
    """Raise M_BAD_JSON for values that cannot be hashed and signed as Matrix requires."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise bad_json(f"{path}: integer out of range")
        return
    if isinstance(value, float):
        raise bad_json(f"{path}: floats are not allowed in events; use integers")
    if isinstance(value, dict):
        for key, item in value.items():
            check_event_values(item, f"{path}.{key}")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            check_event_values(item, f"{path}[{index}]")
        return
    raise bad_json(f"{path}: unsupported value")
