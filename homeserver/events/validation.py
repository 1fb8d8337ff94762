"""Values an event may carry: canonical JSON has no floats and only 53-bit integers."""

from __future__ import annotations

from typing import Any

from homeserver.errors import bad_json, too_large

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


MAX_ID_BYTES = 255


def check_draft_fields(event_type: str, state_key: str | None) -> None:
    """The spec caps `type` and `state_key` at 255 bytes."""
    if len(event_type.encode()) > MAX_ID_BYTES:
        raise too_large(f"event type is longer than {MAX_ID_BYTES} bytes")
    if state_key is not None and len(state_key.encode()) > MAX_ID_BYTES:
        raise too_large(f"state key is longer than {MAX_ID_BYTES} bytes")


def annotation_of(event_type: str, content: dict[str, Any]) -> tuple[str, str] | None:
    """(target event ID, key) when this is an `m.annotation` (a reaction)."""
    relates_to = content.get("m.relates_to")
    if not isinstance(relates_to, dict) or relates_to.get("rel_type") != "m.annotation":
        return None
    target, key = relates_to.get("event_id"), relates_to.get("key")
    if isinstance(target, str) and isinstance(key, str):
        return target, key
    return None
