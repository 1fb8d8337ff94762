"""Email addresses as identifiers: one spelling of each (normalised) and its keyed hash."""

from __future__ import annotations

import hashlib
import hmac
import re

from homeserver.errors import invalid_param

MEDIUM = "email"
MAX_LENGTH = 254  # RFC 5321's longest forward path, less the angle brackets
# What may stand left of the @ once trimmed: printable, no spaces, quotes or brackets.
_LOCAL = re.compile(r"[^\s\"(),:;<>@\[\\\]]{1,64}")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def normalise(address: str) -> str:
    """The one spelling of `address` the server stores and compares: trimmed, case-folded
    (as Synapse's canonicalise_email), its domain in IDNA (ASCII) form.

    M_INVALID_PARAM for anything that is not one plain `local@domain` address."""
    address = address.strip()
    local, at, domain = address.rpartition("@")
    if not at or not _LOCAL.fullmatch(local) or any(ord(c) < 32 for c in local):
        raise invalid_param(f"{address[:100]!r} is not an email address.")
    try:
        ascii_domain = domain.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise invalid_param(f"{address[:100]!r} is not an email address.") from None
    labels = ascii_domain.split(".")
    if not ascii_domain or not all(_LABEL.fullmatch(label) for label in labels):
        raise invalid_param(f"{address[:100]!r} is not an email address.")
    normalised = f"{local.casefold()}@{ascii_domain}"
    if len(normalised) > MAX_LENGTH:
        raise invalid_param("An email address is at most 254 characters long.")
    return normalised


def domain_of(address: str) -> str:
    return address.rpartition("@")[2]


def address_hash(key: bytes, medium: str, address: str) -> str:
    """The keyed hash the log holds instead of the address: without the server's key
    it cannot be reversed nor checked against a guess."""
    return hmac.new(key, f"{medium}\0{address}".encode(), hashlib.sha256).hexdigest()
