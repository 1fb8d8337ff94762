"""Headers for serving media: a safe Content-Disposition and the browser hardening Synapse uses.

Uploaded bytes are whatever a client sent, so a download must never let a
browser run them as a page of ours: the disposition is `inline` only for the
types the spec lists under "Serving inline content", every response carries a
sandboxing Content-Security-Policy and `nosniff`, and a file name is written
either as a plain quoted string (printable ASCII without `"` and `\\`) or in
RFC 5987 `filename*=utf-8''...` form, so no name can break out of the header.
"""

from __future__ import annotations

import re
from urllib.parse import quote

DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_CONTENT_TYPE_LENGTH = 255

# The spec's list (client-server API, "Serving inline content").
INLINE_CONTENT_TYPES = frozenset(
    {
        "text/css",
        "text/plain",
        "text/csv",
        "application/json",
        "application/ld+json",
        "image/jpeg",
        "image/gif",
        "image/png",
        "image/apng",
        "image/webp",
        "image/avif",
        "video/mp4",
        "video/webm",
        "video/ogg",
        "video/quicktime",
        "audio/mp4",
        "audio/webm",
        "audio/aac",
        "audio/mpeg",
        "audio/ogg",
        "audio/wave",
        "audio/wav",
        "audio/x-wav",
        "audio/x-pn-wav",
        "audio/flac",
        "audio/x-flac",
    }
)

# The policy the spec recommends, as Synapse sends it (plus media-src for audio/video).
CONTENT_SECURITY_POLICY = (
    "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf;"
    " style-src 'unsafe-inline'; media-src 'self'; object-src 'self';"
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # Spec 1.4: lets web clients use the media with cross-origin isolation.
    "Cross-Origin-Resource-Policy": "cross-origin",
    "Referrer-Policy": "no-referrer",
}

# An uploaded file never changes under its media ID.
CACHE_CONTROL = "private, max-age=86400, immutable"

# RFC 9110 token characters, for media types and parameter names.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAMETER = rf"\s*;\s*{_TOKEN}=(?:{_TOKEN}|\"[^\"\\\x00-\x1f\x7f]*\")"
_CONTENT_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}(?:{_PARAMETER})*\s*")
# Printable ASCII that is safe inside a quoted-string: no `"`, no `\`.
_QUOTABLE = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]*")
# RFC 5987 attr-char beyond alphanumerics (quote() never escapes "_.-~").
_ATTR_CHAR_SAFE = "!#$&+^`|"


def normalize_content_type(value: str | None) -> str:
    """The content type to store for an upload's Content-Type header.

    Missing: `application/octet-stream` (spec 1.12). A value that is not a
    media type (`type/subtype` with optional parameters) is treated as
    missing, the "obviously wrong" case the spec allows servers to replace.
    """
    if value is None:
        return DEFAULT_CONTENT_TYPE
    value = value.strip()
    if len(value) > MAX_CONTENT_TYPE_LENGTH or _CONTENT_TYPE.fullmatch(value) is None:
        return DEFAULT_CONTENT_TYPE
    return value


def essence(content_type: str) -> str:
    """`Image/PNG; charset=x` -> `image/png`: the media type without parameters."""
    return content_type.split(";", 1)[0].strip().lower()


def served_content_type(content_type: str) -> str:
    """The Content-Type to serve: as uploaded, plus a UTF-8 charset on text/* (spec allows it)."""
    if essence(content_type).startswith("text/") and "charset" not in content_type.lower():
        return f"{content_type}; charset=utf-8"
    return content_type


def is_inline(content_type: str) -> bool:
    return essence(content_type) in INLINE_CONTENT_TYPES


def content_disposition(
    content_type: str, filename: str | None, *, inline: bool | None = None
) -> str:
    """`inline` for the spec's safe types, else `attachment`, with the file name if there is one."""
    kind = "inline" if (is_inline(content_type) if inline is None else inline) else "attachment"
    if not filename:
        return kind
    if _QUOTABLE.fullmatch(filename):
        return f'{kind}; filename="{filename}"'
    return f"{kind}; filename*=utf-8''{quote(filename, safe=_ATTR_CHAR_SAFE)}"


def download_headers(content_type: str, filename: str | None) -> dict[str, str]:
    """Every header of a download response but its length."""
    return {
        "Content-Type": served_content_type(content_type),
        "Content-Disposition": content_disposition(content_type, filename),
        "Cache-Control": CACHE_CONTROL,
        **SECURITY_HEADERS,
    }


def thumbnail_headers(content_type: str) -> dict[str, str]:
    """A thumbnail is always an image of ours, served inline (spec 1.12)."""
    extension = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}
    name = f"thumbnail.{extension.get(essence(content_type), 'png')}"
    return {
        "Content-Type": content_type,
        "Content-Disposition": content_disposition(content_type, name, inline=True),
        "Cache-Control": CACHE_CONTROL,
        **SECURITY_HEADERS,
    }
