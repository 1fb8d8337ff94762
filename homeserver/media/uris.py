"""`mxc://` URIs: parse and validate them, as anything that accepts one from a client must.

The spec (content repository, "Security considerations") requires the server
name to be a valid server name and the media ID to use only `A-Za-z0-9_-`:
that whitelist is what keeps `mxc://host/../../etc/passwd` from ever naming a
path. Pure functions, no imports of ours, so profiles (`avatar_url`), message
validation (`m.image` `url`) and the media API can all use them.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

SCHEME = "mxc://"
# Ours are 24 characters; a longer ID is no file we ever stored.
MAX_MEDIA_ID_LENGTH = 255
MAX_SERVER_NAME_LENGTH = 255

_MEDIA_ID = re.compile(r"[A-Za-z0-9_-]+")
# The spec's server name grammar (appendices, "Server Name"): a host (DNS name,
# IPv4 literal or bracketed IPv6 literal) and an optional port of 1-5 digits.
_SERVER_NAME = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?")


@dataclass(frozen=True, slots=True)
class MxcUri:
    server_name: str
    media_id: str

    def __str__(self) -> str:
        return f"{SCHEME}{self.server_name}/{self.media_id}"


def is_valid_media_id(media_id: str) -> bool:
    """`A-Za-z0-9_-` only, non-empty, at most 255 characters."""
    return len(media_id) <= MAX_MEDIA_ID_LENGTH and _MEDIA_ID.fullmatch(media_id) is not None


def is_valid_server_name(server_name: str) -> bool:
    """A server name as the spec's grammar defines it: host, then an optional `:port`."""
    if len(server_name) > MAX_SERVER_NAME_LENGTH:
        return False
    match = _SERVER_NAME.fullmatch(server_name)
    if match is None:
        return False
    host = match["host"]
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
    return True


def parse_mxc(value: object) -> MxcUri | None:
    """The URI's server name and media ID, or None when `value` is no valid `mxc://` URI.

    No query, fragment, user info or extra path segment is allowed: exactly
    `mxc://<server-name>/<media-id>`.
    """
    if not isinstance(value, str) or not value.startswith(SCHEME):
        return None
    server_name, slash, media_id = value[len(SCHEME) :].partition("/")
    if not slash or not is_valid_server_name(server_name) or not is_valid_media_id(media_id):
        return None
    return MxcUri(server_name, media_id)


def is_valid_mxc(value: object) -> bool:
    """True for a well-formed `mxc://<server-name>/<media-id>`."""
    return parse_mxc(value) is not None
