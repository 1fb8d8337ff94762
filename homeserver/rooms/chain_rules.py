"""Authorization for every chain: rooms by the Matrix rules, accounts and aliases by ours.

The appender calls `authorize` under the append lock for every draft, so the
rules here are decided against the state the log really has, and against the
facts beyond a chain's state that some rules need (`ChainFacts`), read once
per batch under the same lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from homeserver.device_control import rules as device_rules
from homeserver.device_control.facts import CommandFacts
from homeserver.device_control.facts import load_facts as load_command_facts
from homeserver.errors import MatrixError, bad_json, forbidden, not_found
from homeserver.events import types
from homeserver.events.content import e2ee as e2ee_content
from homeserver.events.content.profile import parse_profile
from homeserver.events.model import Draft, Event, StateEdit, state_changed
from homeserver.events.validation import check_reaction_key
from homeserver.friends import errors as friend_errors
from homeserver.friends import rules as friend_rules
from homeserver.friends.blocks import BlockFacts, load_block_facts
from homeserver.log.appender import BatchFacts
from homeserver.projections.room_state import RoomState
from homeserver.rooms.auth import authorize as authorize_room_event


@dataclass(frozen=True, slots=True)
class ChainFacts:
    """The commands a batch's device results answer, and the blocks its invites meet."""

    commands: CommandFacts
    blocks: BlockFacts

    def accepted(self, event: Event) -> ChainFacts:
        commands, blocks = self.commands.accepted(event), self.blocks.accepted(event)
        if commands is self.commands and blocks is self.blocks:
            return self
        return ChainFacts(commands, blocks)


NOT_STATE_ACCOUNT_FACTS = frozenset({types.MEDIA, types.E2EE_SIGNATURES})


async def load_chain_facts(conn: asyncpg.Connection, drafts: Sequence[Draft]) -> ChainFacts:
    """The appender's `load_facts`: no query unless the batch answers a command or invites."""
    return ChainFacts(await load_command_facts(conn, drafts), await load_block_facts(conn, drafts))


def authorize(
    state: RoomState, draft: Draft, redacted_sender: str | None, facts: BatchFacts | None = None
) -> None:
    # The one compare-and-set of every chain: an edit of state replaced meanwhile.
    if isinstance(draft, StateEdit):
        current = state.get(draft.type, draft.state_key or "")
        if (current.event_id if current is not None else None) != draft.replaces:
            raise state_changed(draft.type)
    known = facts if isinstance(facts, ChainFacts) else None
    if types.is_room_chain(draft.room_id):
        authorize_room_event(state, draft, redacted_sender)
        # Nobody may invite a user who has blocked them (friends/blocks.py).
        if known is not None and known.blocks.refuses(draft):
            raise friend_errors.invite_refused()
        # Device rooms: capabilities, commands, results, expiries (device_control/rules.py).
        device_rules.authorize(state, draft, known.commands if known is not None else None)
        if _is_channel(state):
            _authorize_channel_reaction(draft)
    elif types.is_account_chain(draft.room_id):
        _authorize_account_fact(state, draft)
    elif types.is_alias_chain(draft.room_id):
        _authorize_alias_fact(state, draft)
    else:
        raise forbidden(f"{draft.room_id!r} is not a room, user or alias")


def _is_channel(state: RoomState) -> bool:
    create = state.content(types.CREATE)
    return create is not None and create.get("type") == types.CHANNEL_ROOM_TYPE


def _authorize_channel_reaction(draft: Draft) -> None:
    """In a channel subscribers may only react (channels/presets.py): a reaction must
    be one, an annotation with a short key, or it would be a post by another name."""
    relates_to = draft.content.get("m.relates_to")
    if not isinstance(relates_to, dict) or relates_to.get("rel_type") != "m.annotation":
        if draft.type == types.REACTION:
            raise bad_json(
                "A reaction in a channel annotates an event: m.relates_to with"
                " rel_type m.annotation, event_id and key."
            )
        return
    key = relates_to.get("key")
    if draft.type == types.REACTION and (
        not isinstance(relates_to.get("event_id"), str) or not isinstance(key, str)
    ):
        raise bad_json("content.m.relates_to: a reaction names its event_id and key.")
    if isinstance(key, str):
        check_reaction_key(key)


def _authorize_account_fact(state: RoomState, draft: Draft) -> None:
    if draft.type in NOT_STATE_ACCOUNT_FACTS:
        # Upload records and signatures never change: each is a fact of its own.
        if draft.state_key is not None:
            raise forbidden(f"{draft.type} facts are not state")
    elif draft.state_key is None:
        raise forbidden("account facts are state")
    if draft.type == types.ACCOUNT:
        # The account fact is written once, at registration, into an empty chain.
        if state.exists:
            raise MatrixError(400, "M_USER_IN_USE", "User ID already taken.")
        return
    if state.get(types.ACCOUNT) is None:
        raise not_found(f"no account {draft.room_id}")
    if draft.type == types.PROFILE:
        # Profiles (homeserver/profiles): only their owner changes them.
        if draft.sender != draft.room_id or draft.state_key != "":
            raise forbidden("Only its owner may change a profile.")
        parse_profile(draft.content)
    if draft.type in e2ee_content.FACT_TYPES:
        # Keys and signatures (homeserver/e2ee): only their owner publishes them.
        if draft.sender != draft.room_id:
            raise forbidden("Only its owner may publish an account's keys.")
        e2ee_content.check_fact(draft.type, draft.room_id, draft.state_key, draft.content)
    # Friends and blocks: relations, blocks and the account data kept from them.
    friend_rules.authorize(state, draft)


def _authorize_alias_fact(state: RoomState, draft: Draft) -> None:
    if draft.type != types.ALIAS or draft.state_key != "":
        raise forbidden("alias chains hold only alias facts")
    current = state.content(types.ALIAS) or {}
    if "room_id" in draft.content:
        if "room_id" in current:
            raise MatrixError(409, "M_UNKNOWN", f"Room alias {draft.room_id} already exists.")
        return
    if "room_id" not in current:
        raise not_found(f"Room alias {draft.room_id} not found.")
