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
AVATAR = "m.room.avatar"
TOMBSTONE = "m.room.tombstone"
SERVER_ACL = "m.room.server_acl"
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

# Reports (homeserver/moderation): facts of the moderation chain, which only
# server admins read (never served to clients), sent by the reporter
# (events/content/reports.py): an event, a room or a user reported, and a report
# an admin deleted. A report's ID is its stream position.
REPORT_EVENT = "com.linkchat.report.event"
REPORT_ROOM = "com.linkchat.report.room"
REPORT_USER = "com.linkchat.report.user"
REPORT_DELETED = "com.linkchat.report.deleted"
REPORT_TYPES = frozenset({REPORT_EVENT, REPORT_ROOM, REPORT_USER})
# Mutes (homeserver/moderation): state in the room, keyed by "_" + the muted user, kept by
# the server alongside the m.room.power_levels change that lowers the user below
# events_default (events/content/mutes.py); {} once lifted.
MUTE = "com.linkchat.mute"
# Shadow-bans (homeserver/moderation): state of the moderation chain keyed by the user,
# {"shadow_banned": true}, or {"shadow_banned": false, "banned_at": P} ending the ban
# whose fact is at position P (events/content/shadow_bans.py).
SHADOW_BAN = "com.linkchat.shadow_ban"
# Blocked rooms (homeserver/moderation): state of the moderation chain keyed by the room
# ID, {"block": bool}, with the admin who blocked it as sender. Nobody joins, knocks on
# or is invited to a blocked room, and it leaves the public directory.
ROOM_BLOCK = "com.linkchat.room.block"
# A room an admin deleted with `purge` (DELETE /_synapse/admin/v2/rooms/{roomId}): state
# of the moderation chain keyed by the room ID, {}. The log keeps its events (it is
# append-only), but nobody reads or enters the room any more.
ROOM_PURGED = "com.linkchat.room.purged"

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

# Moderation (homeserver/admin): one chain per server, named by
# `moderation_chain(server_name)`, which only server admins read. Every admin
# action is an ADMIN_ACTION fact there (who: the sender; when: its
# origin_server_ts; {action, target?, reason?, details?}: what, on whom, why),
# appended with the facts the action changes (events/content/admin.py). A user
# flagged a server admin through the admin API is SERVER_ADMIN state there,
# keyed by the user ID, {"admin": bool}.
ADMIN_ACTION = "com.linkchat.admin.action"
SERVER_ADMIN = "com.linkchat.admin.server_admin"
# A user's own rate limit (Synapse's override_ratelimit), state keyed by the user ID:
# {"messages_per_second": int, "burst_count": int}, or {} once removed.
RATELIMIT_OVERRIDE = "com.linkchat.admin.ratelimit_override"
# Media an admin quarantined (no longer served to anyone) or deleted, state keyed by
# the media ID: {"quarantined": bool}; {"deleted": true}.
MEDIA_QUARANTINE = "com.linkchat.admin.media_quarantine"
MEDIA_DELETION = "com.linkchat.admin.media_deletion"
# Registration tokens: state keyed by the token, {uses_allowed?, expiry_time?} (null:
# unlimited, never), or {} once deleted; and, sent by the new user with their account
# fact, one REGISTRATION_TOKEN_USED {token, session} per registration that used one.
REGISTRATION_TOKEN = "com.linkchat.admin.registration_token"
REGISTRATION_TOKEN_USED = "com.linkchat.registration_token.used"


def is_room_chain(chain_id: str) -> bool:
    return chain_id.startswith("!")


# A room ID: `!opaque:server` (room versions 1 to 11), or `!` + the create event's
# reference hash, 43 characters of URL-safe base64 (version 12).
_ROOM_ID = re.compile(r"![^:\s]+:\S+|![A-Za-z0-9_-]{43}")


def is_room_id(text: str) -> bool:
    return _ROOM_ID.fullmatch(text) is not None


# The outline of a user ID (@localpart:server), as every service checks one it is given.
_USER_ID = re.compile(r"@[^:\s]+:\S+")


def is_user_id(text: str) -> bool:
    return _USER_ID.fullmatch(text) is not None


def is_account_chain(chain_id: str) -> bool:
    return chain_id.startswith("@")


def is_alias_chain(chain_id: str) -> bool:
    return chain_id.startswith("#")


# The sigil of moderation chains: no Matrix identifier starts with it.
MODERATION_SIGIL = "~"


def moderation_chain(server_name: str) -> str:
    """The chain of the server's admin actions and moderation facts."""
    return f"{MODERATION_SIGIL}moderation:{server_name}"


def is_moderation_chain(chain_id: str) -> bool:
    return chain_id.startswith(MODERATION_SIGIL)
