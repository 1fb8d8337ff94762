"""Friends and blocks: requests, accepting into a direct chat, removing, blocking.

Every change is a group of facts appended at once into the chains of both
users (see friends/content.py for their shapes and friends/rules.py for the
rules the appender checks under its lock), together with the account data
the server keeps current for each side:

- `com.linkchat.friends` (global): {friends, incoming, outgoing}, the user's
  relations, recomputed from their facts on every change;
- `m.direct`: the friends' direct chat, flagged for both on accept;
- `m.ignored_user_list`: a blocked user is added on block, removed on unblock.

Account data is computed from what this service read, so each write names
the event it replaces (a StateEdit); if another change landed in between, the
group is refused (LINKCHAT_STATE_CHANGED, or COM.LINKCHAT_CONFLICT when the
friend facts themselves changed) and rebuilt from a fresh read.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from homeserver.account_data.facts import (
    GLOBAL,
    AccountDataEdit,
    account_data_edit,
    account_data_key,
)
from homeserver.account_data.ignore import ignoring
from homeserver.clock import now_ms
from homeserver.errors import MatrixError, forbidden, invalid_param, not_found
from homeserver.events import types
from homeserver.events.model import STATE_CHANGED, Draft
from homeserver.friends import errors
from homeserver.friends.content import (
    CANCELLED,
    DECLINED,
    DIRECT,
    FRIENDS,
    FRIENDS_ACCOUNT_DATA,
    INCOMING,
    OUTGOING,
    REMOVED,
    friends_view,
    relation_of,
)
from homeserver.log.appender import Appender
from homeserver.store import account_data as account_data_store
from homeserver.store import accounts as account_store
from homeserver.store import friends as friend_store

JsonDict = dict[str, Any]

ANYONE = "anyone"
SHARES_ROOM = "shares_room"
NOBODY = "nobody"
REQUEST_POLICIES = (ANYONE, SHARES_ROOM, NOBODY)

# A refused group is rebuilt from a fresh read this many times at most; only a
# user whose friends change continuously could exhaust it.
MAX_ATTEMPTS = 5
# What ends each relation when a block ends it: what the other side sees is
# an ordinary decline, cancel or removal, never a block.
_ENDED_BY_BLOCK = {INCOMING: DECLINED, OUTGOING: CANCELLED, FRIENDS: REMOVED}
# The refusals of a group built from a read that another change overtook.
_CHANGED = (STATE_CHANGED, errors.CONFLICT)


class DirectChats(Protocol):
    """Opens a direct chat (rooms/service.py's RoomService)."""

    async def create_direct_chat(self, creator: str, invitee: str) -> str: ...


@dataclass(frozen=True, slots=True)
class Friend:
    user_id: str
    since: int
    room_id: str


@dataclass(frozen=True, slots=True)
class FriendRequest:
    user_id: str
    message: str | None
    ts: int


@dataclass(frozen=True, slots=True)
class Block:
    user_id: str
    ts: int


class _Change:
    """The drafts of one change, built from one read of the facts it depends on."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self._facts: dict[str, dict[str, JsonDict]] = {}
        self._relations: list[Draft] = []
        self._blocks: list[Draft] = []
        self._account_data: list[Draft] = []

    async def facts_of(self, owner: str) -> dict[str, JsonDict]:
        if owner not in self._facts:
            self._facts[owner] = await friend_store.friend_facts(self.conn, owner)
        return self._facts[owner]

    async def relation(self, owner: str, other: str) -> str | None:
        return relation_of((await self.facts_of(owner)).get(other))

    async def relate(self, owner: str, other: str, sender: str, content: JsonDict) -> None:
        (await self.facts_of(owner))[other] = content
        self._relations.append(Draft(owner, sender, types.FRIEND, content, state_key=other))

    async def relate_both(self, sender: str, other: str, content: JsonDict) -> None:
        """The same fact in both chains (sender's and other's), as an accept or an end."""
        await self.relate(sender, other, sender, content)
        await self.relate(other, sender, sender, content)

    def block(self, owner: str, other: str, content: JsonDict) -> None:
        self._blocks.append(Draft(owner, owner, types.FRIEND_BLOCK, content, state_key=other))

    async def edit_account_data(self, owner: str, data_type: str, edit: AccountDataEdit) -> None:
        found = await account_data_store.fact(self.conn, owner, account_data_key(GLOBAL, data_type))
        replaces, current = found if found is not None else (None, {})
        self._account_data.append(
            account_data_edit(owner, GLOBAL, data_type, edit(copy.deepcopy(current)), replaces)
        )

    async def drafts(self) -> list[Draft]:
        """Relations first, then blocks (which need the relations ended), then account data."""
        views = []
        for owner, facts in self._facts.items():
            if not any(d.room_id == owner for d in self._relations):
                continue
            key = account_data_key(GLOBAL, FRIENDS_ACCOUNT_DATA)
            found = await account_data_store.fact(self.conn, owner, key)
            views.append(
                account_data_edit(
                    owner,
                    GLOBAL,
                    FRIENDS_ACCOUNT_DATA,
                    friends_view(facts),
                    found[0] if found is not None else None,
                )
            )
        return self._relations + self._blocks + self._account_data + views


def _with_direct_room(other: str, room_id: str) -> AccountDataEdit:
    def edit(data: JsonDict) -> JsonDict:
        listed = data.get(other)
        rooms = [r for r in listed if isinstance(r, str)] if isinstance(listed, list) else []
        if room_id not in rooms:
            rooms.append(room_id)
        data[other] = rooms
        return data

    return edit


class FriendService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        appender: Appender,
        direct_chats: DirectChats,
        requests_from: str = ANYONE,
    ) -> None:
        if requests_from not in REQUEST_POLICIES:
            raise ValueError(f"requests_from must be one of {', '.join(REQUEST_POLICIES)}")
        self._pool = pool
        self._appender = appender
        self._direct_chats = direct_chats
        self._requests_from = requests_from

    # Requests

    async def send_request(self, user_id: str, target: str, message: str | None) -> Friend | None:
        """POST /friends/requests: None when the request is pending; the new
        friendship when `target` had already asked `user_id` (asking back accepts)."""
        await self._require_other_user(user_id, target, errors.self_request)
        async with self._pool.acquire() as conn:
            current = await friend_store.relation(conn, user_id, target)
            blocked_by_me = await friend_store.has_blocked(conn, user_id, target)
            blocked_by_them = await friend_store.has_blocked(conn, target, user_id)
            shares_room = self._requests_from != SHARES_ROOM or await friend_store.share_a_room(
                conn, user_id, target
            )
        if current is not None:
            if current.relation == INCOMING:
                return await self.accept(user_id, target)
            if current.relation == FRIENDS:
                raise errors.already_friends()
            raise errors.duplicate_request()
        if blocked_by_me:
            raise errors.user_blocked()
        if self._requests_from == NOBODY:
            raise forbidden("Friend requests are turned off on this server.")
        if not shares_room:
            raise forbidden("You can only send a friend request to someone you share a room with.")
        if blocked_by_them:
            raise errors.request_refused()
        request: JsonDict = {"ts": now_ms()}
        if message is not None:
            request["message"] = message

        async def build(change: _Change) -> None:
            await change.relate(user_id, target, user_id, {"relation": OUTGOING, **request})
            await change.relate(target, user_id, user_id, {"relation": INCOMING, **request})

        await self._commit(build)
        return None

    async def accept(self, user_id: str, requester: str) -> Friend:
        """POST /friends/requests/{userId}/accept: friends, with one direct chat."""
        self._check_user_id(requester)
        async with self._pool.acquire() as conn:
            current = await friend_store.relation(conn, user_id, requester)
        if current is not None and current.relation == FRIENDS:
            raise errors.already_friends()
        if current is None or current.relation != INCOMING:
            raise errors.no_request()
        room_id = await self._direct_chat(user_id, requester)
        friendship: JsonDict = {"relation": FRIENDS, "since": now_ms(), "room_id": room_id}

        async def build(change: _Change) -> None:
            await change.relate_both(user_id, requester, friendship)
            await change.edit_account_data(user_id, DIRECT, _with_direct_room(requester, room_id))
            await change.edit_account_data(requester, DIRECT, _with_direct_room(user_id, room_id))

        await self._commit(build)
        return Friend(requester, friendship["since"], room_id)

    async def decline(self, user_id: str, requester: str) -> None:
        """POST /friends/requests/{userId}/decline."""
        await self._end(user_id, requester, INCOMING, DECLINED)

    async def cancel(self, user_id: str, target: str) -> None:
        """DELETE /friends/requests/{userId}: withdraw one's own request."""
        await self._end(user_id, target, OUTGOING, CANCELLED)

    async def remove_friend(self, user_id: str, friend: str) -> None:
        """DELETE /friends/{userId}. The direct chat stays; it is the users' room."""
        await self._end(user_id, friend, FRIENDS, REMOVED)

    async def _end(self, user_id: str, other: str, relation: str, ended: str) -> None:
        self._check_user_id(other)
        async with self._pool.acquire() as conn:
            current = await friend_store.relation(conn, user_id, other)
        if current is None or current.relation != relation:
            raise errors.not_friends() if relation == FRIENDS else errors.no_request()

        async def build(change: _Change) -> None:
            await change.relate_both(user_id, other, {"ended": ended})

        await self._commit(build)

    # Blocks

    async def block(self, user_id: str, target: str) -> None:
        """PUT /blocks/{userId}: ends any relation, ignores the user; idempotent."""
        await self._require_other_user(user_id, target, errors.self_block)

        async def build(change: _Change) -> None:
            if await friend_store.has_blocked(change.conn, user_id, target):
                return
            current = await change.relation(user_id, target)
            if current is not None:
                await change.relate_both(user_id, target, {"ended": _ENDED_BY_BLOCK[current]})
            change.block(user_id, target, {"blocked": True, "ts": now_ms()})
            await change.edit_account_data(user_id, types.IGNORED_USER_LIST, ignoring(target, True))

        # A relation that changed since it was read makes its end refused; read again.
        await self._commit(build, retry_on=(*_CHANGED, errors.NO_REQUEST, errors.NOT_FRIENDS))

    async def unblock(self, user_id: str, target: str) -> None:
        """DELETE /blocks/{userId}: also un-ignores the user."""
        self._check_user_id(target)
        async with self._pool.acquire() as conn:
            if not await friend_store.has_blocked(conn, user_id, target):
                raise errors.not_blocked()

        async def build(change: _Change) -> None:
            change.block(user_id, target, {"blocked": False})
            await change.edit_account_data(
                user_id, types.IGNORED_USER_LIST, ignoring(target, False)
            )

        await self._commit(build)

    # Reading

    async def friends(self, user_id: str) -> list[Friend]:
        async with self._pool.acquire() as conn:
            rows = await friend_store.relations(conn, user_id, [FRIENDS])
        return [Friend(r.other_id, r.ts, r.room_id or "") for r in rows]

    async def requests(self, user_id: str) -> tuple[list[FriendRequest], list[FriendRequest]]:
        """(incoming, outgoing) pending requests, oldest first."""
        async with self._pool.acquire() as conn:
            rows = await friend_store.relations(conn, user_id, [INCOMING, OUTGOING])
        incoming = [
            FriendRequest(r.other_id, r.message, r.ts) for r in rows if r.relation == INCOMING
        ]
        outgoing = [
            FriendRequest(r.other_id, r.message, r.ts) for r in rows if r.relation == OUTGOING
        ]
        return incoming, outgoing

    async def blocks(self, user_id: str) -> list[Block]:
        async with self._pool.acquire() as conn:
            rows = await friend_store.blocks(conn, user_id)
        return [Block(r.blocked_id, r.ts) for r in rows]

    # Helpers

    async def _commit(
        self,
        build: Callable[[_Change], Awaitable[None]],
        retry_on: Sequence[str] = _CHANGED,
    ) -> None:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            async with self._pool.acquire() as conn:
                change = _Change(conn)
                await build(change)
                drafts = await change.drafts()
            if not drafts:
                return
            try:
                await self._appender.append_group(drafts)
                return
            except MatrixError as refused:
                if refused.errcode == STATE_CHANGED and attempt == MAX_ATTEMPTS:
                    # The friends API's own errcode for "kept changing" (spec/friends.md).
                    raise errors.conflict() from refused
                if refused.errcode not in retry_on or attempt == MAX_ATTEMPTS:
                    raise

    async def _direct_chat(self, user_id: str, other: str) -> str:
        """The pair's live direct chat, else a new one: a room flagged in either
        one's m.direct for the other, where both (and nobody else) are joined or
        invited and at least one has joined."""
        async with self._pool.acquire() as conn:
            candidates: list[str] = []
            for owner, peer in ((user_id, other), (other, user_id)):
                data = await account_data_store.content(conn, owner, GLOBAL, DIRECT) or {}
                listed = data.get(peer)
                if isinstance(listed, list):
                    # The latest flagged first.
                    candidates.extend(r for r in reversed(listed) if isinstance(r, str))
            for room_id in dict.fromkeys(candidates):
                members = await friend_store.present_members(conn, room_id)
                if set(members) == {user_id, other} and "join" in members.values():
                    return room_id
        return await self._direct_chats.create_direct_chat(user_id, other)

    @staticmethod
    def _check_user_id(user_id: str) -> None:
        if not types.is_user_id(user_id) or len(user_id) > 255:
            raise invalid_param(f"{user_id!r} is not a valid user ID.")

    async def _require_other_user(
        self, user_id: str, other: str, to_oneself: Callable[[], MatrixError]
    ) -> None:
        self._check_user_id(other)
        if other == user_id:
            raise to_oneself()
        async with self._pool.acquire() as conn:
            if not await account_store.user_exists(conn, other):
                raise not_found(f"User {other} not found.")
