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
from dataclasses import dataclass
from functools import lru_cache

from homeserver.errors import MatrixError

_SYNC = re.compile(r"^s(\d+)_(\d+)_(\d+)(?:_(\d+))?$")
_TOPOLOGICAL = re.compile(r"^t(\d+)$")


def invalid_token(token: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", f"Invalid token {token[:64]!r}.")


@dataclass(frozen=True, slots=True)
class SyncToken:
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
    match = _SYNC.match(token)
    if match is None:
        raise invalid_token(token)
    return SyncToken(
        int(match.group(1)), int(match.group(2)), int(match.group(3)), int(match.group(4) or 0)
    )


def pagination_token(position: int) -> str:
    return f"t{max(0, position)}"


def parse_pagination_token(token: str) -> int:
    """The log position a pagination or sync token names."""
    if (match := _TOPOLOGICAL.match(token)) is not None:
        return int(match.group(1))
    return SyncToken.parse(token).events
