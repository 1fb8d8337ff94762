"""Event type names the server interprets, and the chain kinds events live in."""

from __future__ import annotations

CREATE = "m.room.create"
MEMBER = "m.room.member"
POWER_LEVELS = "m.room.power_levels"
JOIN_RULES = "m.room.join_rules"
HISTORY_VISIBILITY = "m.room.history_visibility"
GUEST_ACCESS = "m.room.guest_access"
NAME = "m.room.name"
TOPIC = "m.room.topic"
CANONICAL_ALIAS = "m.room.canonical_alias"
REDACTION = "m.room.redaction"
MESSAGE = "m.room.message"

# Facts about an account, in the chain named by the user ID.
ACCOUNT = "com.linkchat.account"
ACCOUNT_DEVICE = "com.linkchat.account.device"
ACCOUNT_FORGOTTEN = "com.linkchat.account.forgotten"
# Facts about an alias, in the chain named by the alias.
ALIAS = "com.linkchat.alias"
# Read receipts and account data, in the account chain of their owner.
RECEIPT = "com.linkchat.receipt"
ACCOUNT_DATA = "com.linkchat.account_data"
FILTER = "com.linkchat.filter"


def is_room_chain(chain_id: str) -> bool:
    return chain_id.startswith("!")


def is_account_chain(chain_id: str) -> bool:
    return chain_id.startswith("@")


def is_alias_chain(chain_id: str) -> bool:
    return chain_id.startswith("#")
