"""Values an event may carry: canonical JSON has no floats and only 53-bit integers."""

from __future__ import annotations

import unicodedata
from typing import Any

from homeserver.errors import bad_json, too_large
from homeserver.events import types

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


def check_draft_values(event_type: str, content: dict[str, Any]) -> None:
    """`check_event_values` for the content of any draft, a fact of an account chain too.

    The one fraction allowed is a room tag's `order`: the spec makes it a number
    between 0 and 1, and clients send fractions. A fact logged with one hashes and
    signs as it was encoded, and replays as the same float.
    """
    if event_type == types.ACCOUNT_DATA and content.get("type") == types.TAG:
        content = {**content, "content": _without_fractional_orders(content.get("content"))}
    check_event_values(content)


def _without_fractional_orders(tag_content: Any) -> Any:
    tags = tag_content.get("tags") if isinstance(tag_content, dict) else None
    if not isinstance(tags, dict):
        return tag_content
    return {
        **tag_content,
        "tags": {
            name: {key: value for key, value in tag.items() if not _fractional_order(key, value)}
            if isinstance(tag, dict)
            else tag
            for name, tag in tags.items()
        },
    }


def _fractional_order(key: str, value: Any) -> bool:
    return key == "order" and isinstance(value, float)


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


# Reaction keys are what clients show in a pill under the event: an emoji or
# a short word. Where reacting is all a member may do (a channel), a free-text
# key would be a post by another name.
MAX_REACTION_KEY_GRAPHEMES = 64
# Also in bytes, since one cluster may stack any number of combining marks.
# 64 four-byte emoji fit; so do 64 clusters of most scripts.
MAX_REACTION_KEY_BYTES = 256
_ZWJ = "\u200d"


def _extends_cluster(char: str) -> bool:
    code = ord(char)
    return (
        unicodedata.category(char) in ("Mn", "Me", "Mc")
        or code in (0x200C, 0x200D)
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0x1F3FB <= code <= 0x1F3FF  # skin tones
        or 0xE0020 <= code <= 0xE007F  # tags (subdivision flags)
        or 0xE0100 <= code <= 0xE01EF
    )


def _pictographic(char: str) -> bool:
    code = ord(char)
    return unicodedata.category(char) == "So" or 0x1F000 <= code <= 0x1FAFF


def grapheme_count(text: str) -> int:
    """About the number of user-perceived characters (Unicode extended grapheme clusters).

    It joins only what the Unicode rules join (combining marks and other
    extenders, emoji joined by ZWJ, pairs of regional indicators) and counts
    every other code point, so it never counts fewer clusters than there are,
    save for pictographs joined by ZWJ to non-pictographs, which no keyboard
    types.
    """
    count = 0
    previous = ""
    regional_run = 0
    for char in text:
        code = ord(char)
        joined = count > 0 and (
            _extends_cluster(char) or (previous == _ZWJ and _pictographic(char))
        )
        if 0x1F1E6 <= code <= 0x1F1FF:
            regional_run += 1
            joined = joined or regional_run % 2 == 0
        elif not _extends_cluster(char):
            regional_run = 0
        if not joined:
            count += 1
        previous = char
    return count


def check_reaction_key(key: str) -> None:
    """400 M_BAD_JSON unless `key` is as short as the reactions clients offer."""
    if (
        len(key.encode()) > MAX_REACTION_KEY_BYTES
        or grapheme_count(key) > MAX_REACTION_KEY_GRAPHEMES
    ):
        raise bad_json(
            f"content.m.relates_to.key: a reaction key is at most {MAX_REACTION_KEY_GRAPHEMES}"
            f" characters and {MAX_REACTION_KEY_BYTES} bytes."
        )
