"""The role ladder: which power level each named role stands for, and back.

Pure: the levels come from the `roles` config section, which app.py turns into
a `RoleLadder`. A role is a name for a level, never stored on its own: the
log holds only `m.room.power_levels`, and a user's role is read off their
level, so a level set by any Matrix client shows as a role too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from homeserver.errors import invalid_param

Role = Literal["owner", "admin", "moderator", "member"]
# Highest first: a user's role is the first whose level they reach.
ROLES: tuple[Role, ...] = get_args(Role)


@dataclass(frozen=True, slots=True)
class RoleLadder:
    owner: int = 100
    admin: int = 75
    moderator: int = 50
    member: int = 0

    def __post_init__(self) -> None:
        if not self.owner > self.admin > self.moderator > self.member:
            raise ValueError("role levels must be strictly ordered")

    def level_of(self, role: str) -> int:
        """The power level of a role; 400 M_INVALID_PARAM for a name that is not one."""
        if role not in ROLES:
            raise invalid_param(f"Unknown role {role!r}; roles are {', '.join(ROLES)}.")
        level: int = getattr(self, role)
        return level

    def role_of(self, level: int) -> Role | None:
        """The highest role whose level is at most `level`; None below `member` (muted)."""
        for role in ROLES:
            if level >= getattr(self, role):
                return role
        return None
