"""One account per email address, decided under the append lock.

A `com.linkchat.account.threepid` fact binds an address (its keyed hash, the state
key) to the account whose chain holds it. The rule reads who holds each hash the
batch binds, once per batch under the lock, so two sign-ups or two adds of one
address at once cannot both succeed, whichever process serves them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from homeserver.errors import MatrixError, forbidden
from homeserver.events import types
from homeserver.events.model import Draft, Event
from homeserver.log.rules import ACCOUNT, ChainRules
from homeserver.projections.room_state import RoomState
from homeserver.store import threepids as threepid_store


def in_use() -> MatrixError:
    return MatrixError(400, "M_THREEPID_IN_USE", "This email address is already in use.")


@dataclass(frozen=True, slots=True)
class BindingFacts:
    owners: dict[str, str]  # address hash -> the account holding it, for this batch's hashes

    def accepted(self, event: Event) -> BindingFacts:
        if event.type != types.ACCOUNT_THREEPID or event.state_key is None:
            return self
        owners = dict(self.owners)
        if event.content:
            owners[event.state_key] = event.room_id
        elif owners.get(event.state_key) == event.room_id:
            del owners[event.state_key]
        return BindingFacts(owners)


async def load_binding_facts(conn: asyncpg.Connection, drafts: Sequence[Draft]) -> BindingFacts:
    hashes = [
        draft.state_key
        for draft in drafts
        if draft.type == types.ACCOUNT_THREEPID and draft.state_key is not None
    ]
    if not hashes:
        return BindingFacts({})
    return BindingFacts(await threepid_store.owners(conn, hashes))


def authorize_binding(state: RoomState, draft: Draft, facts: BindingFacts) -> None:
    if draft.sender != draft.room_id:
        raise forbidden("Only its owner may bind an address to an account.")
    if not draft.content:
        return  # a removal
    # Phone numbers only as an admin sets them (PUT /_synapse/admin/v2/users).
    if draft.content.get("medium") not in ("email", "msisdn"):
        raise forbidden("Only email addresses and phone numbers can be bound.")
    holder = facts.owners.get(draft.state_key or "")
    if holder is not None and holder != draft.room_id:
        raise in_use()


def register(rules: ChainRules) -> None:
    rules.add_with_facts(ACCOUNT, {types.ACCOUNT_THREEPID}, authorize_binding, load_binding_facts)
