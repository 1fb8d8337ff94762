"""The third-party IDs a server admin gives an account (PUT /_synapse/admin/v2/users).

They are bindings like the ones users make (homeserver/email): a fact in the
account chain holding the address's keyed hash, the address in the secret table,
one account per address under the append lock. An admin may also set phone
numbers (msisdn), which users cannot validate themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from homeserver.email.addresses import normalise
from homeserver.email.service import EmailService
from homeserver.errors import invalid_param

MEDIA = ("email", "msisdn")
MAX_ADDRESS_LENGTH = 320


@dataclass(frozen=True, slots=True)
class ThreepidRow:
    medium: str
    address: str
    added_at: int
    validated_at: int


def canonical(medium: str, address: str) -> tuple[str, str]:
    """(medium, address) as stored: an email address normalised as users' are (trimmed,
    case-folded, IDNA domain), a phone number its digits."""
    if medium not in MEDIA:
        raise invalid_param(f"Unknown medium {medium!r}: email or msisdn.")
    address = address.strip()
    if len(address) > MAX_ADDRESS_LENGTH:
        raise invalid_param("The address is too long.")
    if medium == "email":
        return medium, normalise(address)
    if not address.isdigit():
        raise invalid_param("A phone number (msisdn) is its digits, country code first.")
    return medium, address


class AdminThreepids:
    def __init__(self, emails: EmailService) -> None:
        self._emails = emails

    async def of_user(self, user_id: str) -> list[ThreepidRow]:
        return [
            ThreepidRow(row.medium, row.address, row.added_ts, row.validated_ts)
            for row in await self._emails.bindings(user_id)
            if row.address is not None
        ]

    async def replace(self, user_id: str, wanted: Sequence[tuple[str, str]]) -> None:
        """`user_id` holds exactly `wanted` (canonical pairs); 400 M_THREEPID_IN_USE,
        and nothing changed, when another account holds one."""
        await self._emails.replace_bindings(user_id, list(dict.fromkeys(wanted)))
