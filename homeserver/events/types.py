"""Event type names the server interprets, and the chain kinds events live in."""

from __future__ import annotations

import re

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

# Friends and blocks (homeserver/friends): state in the account chain of each
# side, keyed by the other user's ID; a relation is written into both chains
# in one append group.
FRIEND = "com.linkchat.friend"
FRIEND_BLOCK = "com.linkchat.friend.block"

# Roles and broadcast channels: a channel is a room whose m.room.create content
# has this `type`; its subscribers may only react (and redact their reactions).
CHANNEL_ROOM_TYPE = "com.linkchat.channel"
REACTION = "m.reaction"

# Media (homeserver/media): one non-state event per uploaded file in the
# uploader's account chain, {media_id, content_type, filename, size, sha256,
# created_ts}; the bytes stay on disk. Not state, so the chain's state does
# not grow with every upload.
MEDIA = "com.linkchat.media"

# Search and the public room directory (homeserver/search): a room is listed
# while its state event of this type (state key "") says {"visibility": "public"}.
ROOM_DIRECTORY = "com.linkchat.room.directory"

# Device rooms (homeserver/device_control): a device room is a room whose
# m.room.create content has this `type`; its owner and those they grant send
# commands, the device answers with results, the server's system user appends
# the expiry of a command nobody finished in time. A result or an expiry names
# its command with an `m.relates_to` of rel_type DEVICE_RESULT_RELATION.
DEVICE_ROOM_TYPE = "com.linkchat.device"
DEVICE_COMMAND = "com.linkchat.device.command"
DEVICE_RESULT = "com.linkchat.device.result"
DEVICE_CAPABILITIES = "com.linkchat.device.capabilities"
DEVICE_COMMAND_EXPIRED = "com.linkchat.device.command.expired"
DEVICE_RESULT_RELATION = "com.linkchat.result"
# In the owner's account chain, state key the device's user ID: {room_id,
# display_name, created_ts}, or {} once the device is retired.
OWNED_DEVICE = "com.linkchat.account.owned_device"
ENCRYPTION = "m.room.encryption"

# Profiles (homeserver/profiles): the user's global profile, state with state
# key "" in their account chain, {displayname?, avatar_url?}; a change is also
# a new m.room.member join event in each room they are joined to. The account
# data types the server reads: a user's ignore list, and room tags.
PROFILE = "com.linkchat.profile"

# End-to-end encryption (homeserver/e2ee), facts in the account chain of their
# owner (events/content/e2ee.py): a device's identity keys (state, key the
# device ID), a cross-signing key (state, key its usage), and signatures the
# owner made (not state: each upload adds some).
E2EE_DEVICE_KEYS = "com.linkchat.e2ee.device_keys"
E2EE_CROSS_SIGNING_KEY = "com.linkchat.e2ee.cross_signing_key"
E2EE_SIGNATURES = "com.linkchat.e2ee.signatures"
IGNORED_USER_LIST = "m.ignored_user_list"

# Email addresses (homeserver/email): state in the account chain of their owner,
# state key the address's keyed hash (never the address), {medium, validated_ts,
# added_ts}, or {} once removed. The address itself is kept out of the log.
ACCOUNT_THREEPID = "com.linkchat.account.threepid"
TAG = "m.tag"


def is_room_chain(chain_id: str) -> bool:
    return chain_id.startswith("!")


# The outline of a user ID (@localpart:server), as every service checks one it is given.
_USER_ID = re.compile(r"@[^:\s]+:\S+")


def is_user_id(text: str) -> bool:
    return _USER_ID.fullmatch(text) is not None


def is_account_chain(chain_id: str) -> bool:
    return chain_id.startswith("@")


def is_alias_chain(chain_id: str) -> bool:
    return chain_id.startswith("#")
