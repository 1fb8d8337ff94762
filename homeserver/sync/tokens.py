"""Sync and pagination tokens.

A sync token `s{events}_{typing}_{to_device}_{presence}` names a point in each
stream: the event log position, the typing serial, the last to-device message
the device has received, and the presence stream position. Tokens from before
presence (three parts) still parse, with presence 0: "send everyone's".

A pagination token `t{position}` names the gap between
log positions `position` and `position + 1`; a sync token works as one too
(its events part). Paginating backwards from T returns positions <= T;
forwards from T, positions > T. So `prev_batch` of a timeline whose first event
is at p is `t{p-1}`, and history chains with no gap and no duplicate.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from homeserver.errors import MatrixError

_SYNC = re.compile(r"s([0-9]+)_([0-9]+)_([0-9]+)(?:_([0-9]+))?")
_TOPOLOGICAL = re.compile(r"t([0-9]+)")
# Every position is a PostgreSQL BIGINT: a larger number was never one of ours,
# and would fail the query it reached as a 500.
MAX_POSITION = 2**63 - 1


def invalid_token(token: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", f"Invalid token {token[:64]!r}.")


class SyncToken(NamedTuple):
    """Immutable, and a tuple: every sync makes one, and a frozen dataclass is several
    times slower to make."""

    events: int
    typing: int
    to_device: int
    presence: int = 0

    def __str__(self) -> str:
        return f"s{self.events}_{self.typing}_{self.to_device}_{self.presence}"

    @staticmethod
    def parse(token: str) -> SyncToken:
        return _parse_sync_token(token)


# Every long-poll of a busy room arrives with the same `since`: parse it once.
@lru_cache(maxsize=4096)
def _parse_sync_token(token: str) -> SyncToken:
    match = _SYNC.fullmatch(token)
    if match is None:
        raise invalid_token(token)
    parts = [int(part) for part in match.groups("0")]
    if max(parts) > MAX_POSITION:
        raise invalid_token(token)
    return SyncToken(*parts)


# Every long-poll one commit wakes gives its rooms the same tokens.
@lru_cache(maxsize=4096)
def pagination_token(position: int) -> str:
    return f"t{max(0, position)}"


def parse_pagination_token(token: str) -> int:
    """The log position a pagination or sync token names."""
    if (match := _TOPOLOGICAL.fullmatch(token)) is not None:
        if (position := int(match.group(1))) > MAX_POSITION:
            raise invalid_token(token)
        return position
    return SyncToken.parse(token).events
