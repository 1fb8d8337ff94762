"""How a piece of account data is kept: a state fact in its owner's account chain.

Each piece is a `com.linkchat.account_data` event keyed by (room, type) in the
chain `@user`, its content `{"room_id", "type", "content"}` ("" as the room
for global data); projections/accounts.py makes the `account_data` table of
it. Clients' writes replace what was there (a Draft); the server's own
read-modify-writes (tags, m.direct, the ignore list a block changes, the
friends view) name the event they replace (a StateEdit), so a change made
meanwhile refuses them instead of being lost.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from homeserver.events import types
from homeserver.events.model import Draft, StateEdit

JsonDict = dict[str, Any]
# A read-modify-write of one piece's content: the server's own changes (a StateEdit).
AccountDataEdit = Callable[[JsonDict], JsonDict]

GLOBAL = ""


def account_data_key(room_id: str, data_type: str) -> str:
    """The state key of account data in its owner's chain: one per (room, type)."""
    return json.dumps([room_id, data_type])


def account_data_draft(owner: str, room_id: str, data_type: str, content: JsonDict) -> Draft:
    """A write of account data replacing whatever is there."""
    return Draft(*_fact(owner, room_id, data_type, content))


def account_data_edit(
    owner: str, room_id: str, data_type: str, content: JsonDict, replaces: str | None
) -> StateEdit:
    """A write of account data computed from the event `replaces` (None: from none)."""
    return StateEdit(*_fact(owner, room_id, data_type, content), replaces=replaces)


def _fact(
    owner: str, room_id: str, data_type: str, content: JsonDict
) -> tuple[str, str, str, JsonDict, str]:
    """(chain, sender, type, content, state key) of a piece of account data."""
    fact = {"room_id": room_id, "type": data_type, "content": content}
    return owner, owner, types.ACCOUNT_DATA, fact, account_data_key(room_id, data_type)
