"""The third-party IDs a server admin gives an account (PUT /_synapse/admin/v2/users).

A seam: the email capability (issue 16: addresses as identifiers, their
privacy in an append-only log) is being built at the same time. Until it lands,
the admin API keeps addresses in a table outside the log
(migrations/0023_admin_threepids.sql), one account per address, and nothing
else reads them; the email capability then replaces this module's two methods.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import asyncpg

from homeserver.errors import MatrixError, invalid_param
from homeserver.store import threepids as threepid_store
from homeserver.store.threepids import ThreepidRow

MEDIA = ("email", "msisdn")
MAX_ADDRESS_LENGTH = 320


def canonical(medium: str, address: str) -> tuple[str, str]:
    """(medium, address) as stored: an email address trimmed and in lower case, as Synapse."""
    if medium not in MEDIA:
        raise invalid_param(f"Unknown medium {medium!r}: email or msisdn.")
    address = address.strip()
    if medium == "email":
        address = address.lower()
        if address.count("@") != 1 or address.startswith("@") or address.endswith("@"):
            raise invalid_param(f"{address!r} is not an email address.")
    elif not address.isdigit():
        raise invalid_param("A phone number (msisdn) is its digits, country code first.")
    if len(address) > MAX_ADDRESS_LENGTH:
        raise invalid_param("The address is too long.")
    return medium, address


class AdminThreepids:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def of_user(self, user_id: str) -> list[ThreepidRow]:
        async with self._pool.acquire() as conn:
            return await threepid_store.threepids(conn, user_id)

    async def replace(self, user_id: str, wanted: Sequence[tuple[str, str]]) -> None:
        """`user_id` holds exactly `wanted` (canonical pairs); 400 M_THREEPID_IN_USE,
        and nothing changed, when another account holds one."""
        pairs = list(dict.fromkeys(wanted))
        async with self._pool.acquire() as conn, conn.transaction():
            await threepid_store.replace_threepids(conn, user_id, pairs, int(time.time() * 1000))
            # Read after writing: an insert that met another account's row (committed
            # first, or meanwhile: the insert waited for it) did nothing, and shows here.
            held = await threepid_store.owners(conn, pairs)
            taken = sorted(key for key, owner in held.items() if owner != user_id)
            if taken:
                raise MatrixError(
                    400, "M_THREEPID_IN_USE", f"{taken[0]} is in use by another account."
                )
