"""Typing notices: set, stop, expiry and who may type, in one process and shared
through Redis or PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from homeserver.api.app_keys import POOL, SERVER_NAME
from homeserver.api.typing import TYPING
from homeserver.bus.local import LocalBus
from homeserver.sync.notifier import Notifier
from homeserver.sync.recent import RecentEvents
from homeserver.typing_notices.service import (
    MAX_TIMEOUT_MS,
    LocalTypingState,
    PostgresTypingState,
    RedisTypingState,
    TypingService,
    TypingState,
    now_ms,
)
from tests.conftest import AppFactory
from tests.matrix import MatrixClient, User


async def _type(
    hs: MatrixClient, user: User, room: str, typing: bool = True, timeout_ms: int | None = 30_000
) -> None:
    body: dict[str, object] = {"typing": typing}
    if timeout_ms is not None:
        body["timeout"] = timeout_ms
    assert await hs.ok("PUT", f"rooms/{room}/typing/{user.user_id}", body, user=user) == {}


class TypingBehaviour:
    """What every typing backend must do; subclasses provide the `server` fixture."""

    async def test_typing_user_is_listed_for_the_room(self, server: MatrixClient) -> None:
        alice, bob, room = await server.room_of_two()
        await _type(server, bob, room)
        typing = server.app[TYPING]
        assert await typing.typing_for_sync([room], None) == {room: [bob.user_id]}
        await _type(server, alice, room)
        assert await typing.typing_for_sync([room], None) == {
            room: sorted([alice.user_id, bob.user_id])
        }

    async def test_stopping_is_a_change_reported_as_nobody_typing(
        self, server: MatrixClient
    ) -> None:
        _, bob, room = await server.room_of_two()
        typing = server.app[TYPING]
        await _type(server, bob, room)
        before = await typing.current_serial()
        await _type(server, bob, room, typing=False, timeout_ms=None)
        assert await typing.current_serial() > before
        assert await typing.typing_for_sync([room], before) == {room: []}
        assert await typing.typing_for_sync([room], None) == {}

    async def test_only_rooms_changed_since_a_serial_are_reported(
        self, server: MatrixClient
    ) -> None:
        alice, bob, room = await server.room_of_two()
        quiet = await server.create_room(alice)
        await _type(server, alice, quiet)
        since = await server.app[TYPING].current_serial()
        await _type(server, bob, room)
        assert await server.app[TYPING].typing_for_sync([room, quiet], since) == {
            room: [bob.user_id]
        }

    async def test_still_typing_again_is_not_a_change(self, server: MatrixClient) -> None:
        _, bob, room = await server.room_of_two()
        typing = server.app[TYPING]
        await _type(server, bob, room)
        serial = await typing.current_serial()
        await _type(server, bob, room)
        assert await typing.current_serial() == serial

    async def test_stopping_when_not_typing_changes_nothing(self, server: MatrixClient) -> None:
        _, bob, room = await server.room_of_two()
        typing = server.app[TYPING]
        serial = await typing.current_serial()
        await _type(server, bob, room, typing=False, timeout_ms=None)
        assert await typing.current_serial() == serial

    async def test_typing_expires_after_its_timeout(self, server: MatrixClient) -> None:
        _, bob, room = await server.room_of_two()
        typing = server.app[TYPING]
        await _type(server, bob, room, timeout_ms=300)
        since = await typing.current_serial()
        assert await typing.typing_for_sync([room], None) == {room: [bob.user_id]}

        async def stopped() -> bool:
            # The expiry is a change, so a client holding `since` learns of the stop.
            return await typing.typing_for_sync([room], since) == {room: []}

        await server.eventually(stopped)
        assert await typing.typing_for_sync([room], None) == {}

    async def test_cannot_set_someone_elses_typing(self, server: MatrixClient) -> None:
        alice, bob, room = await server.room_of_two()
        reply = await server.request(
            "PUT", f"rooms/{room}/typing/{alice.user_id}", {"typing": True}, user=bob
        )
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")

    async def test_non_member_cannot_type(self, server: MatrixClient) -> None:
        _, _, room = await server.room_of_two()
        stranger = await server.register()
        reply = await server.request(
            "PUT", f"rooms/{room}/typing/{stranger.user_id}", {"typing": True}, user=stranger
        )
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
        assert await server.app[TYPING].typing_for_sync([room], None) == {}

    @pytest.mark.parametrize("body", [{}, {"typing": "yes"}, {"typing": True, "timeout": -1}])
    async def test_malformed_typing_body_is_rejected(
        self, server: MatrixClient, body: dict[str, object]
    ) -> None:
        _, bob, room = await server.room_of_two()
        reply = await server.request("PUT", f"rooms/{room}/typing/{bob.user_id}", body, user=bob)
        assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")

    @pytest.mark.window_sources
    async def test_typing_wakes_a_long_poll_in_the_room(self, server: MatrixClient) -> None:
        alice, bob, room = await server.room_of_two()
        first = await server.ok("GET", "sync", user=alice)
        poll = asyncio.create_task(
            server.ok("GET", f"sync?since={first['next_batch']}&timeout=10000", user=alice)
        )
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await _type(server, bob, room)
        body = await asyncio.wait_for(poll, 5)
        assert time.monotonic() - started < 3
        ephemeral = body["rooms"]["join"][room]["ephemeral"]["events"]
        assert {"type": "m.typing", "content": {"user_ids": [bob.user_id]}} in ephemeral


class TestTypingInOneProcess(TypingBehaviour):
    @pytest.fixture
    def server(self, hs: MatrixClient) -> MatrixClient:
        return hs


class SharedTyping(TypingBehaviour):
    """Typing shared by processes; subclasses provide `shared` (the config sharing it)."""

    @pytest.fixture
    def shared(self) -> dict[str, Any]:
        raise NotImplementedError

    @pytest.fixture
    async def server(self, start_app: AppFactory, shared: dict[str, Any]) -> MatrixClient:
        return await start_app(**shared)

    async def test_typing_set_in_one_process_is_seen_in_another(
        self, start_app: AppFactory, shared: dict[str, Any]
    ) -> None:
        first = await start_app(**shared)
        second = await start_app(**shared)
        _, bob, room = await first.room_of_two()
        since = await second.app[TYPING].current_serial()
        await _type(first, bob, room)
        assert await second.app[TYPING].typing_for_sync([room], since) == {room: [bob.user_id]}
        await _type(first, bob, room, typing=False, timeout_ms=None)
        assert await second.app[TYPING].typing_for_sync([room], None) == {}

    @pytest.mark.window_sources
    async def test_typing_in_one_process_wakes_a_long_poll_in_another(
        self, start_app: AppFactory, shared: dict[str, Any]
    ) -> None:
        first = await start_app(**shared)
        second = await start_app(**shared)
        alice, bob, room = await first.room_of_two()
        initial = await second.ok("GET", "sync", user=alice)
        poll = asyncio.create_task(
            second.ok("GET", f"sync?since={initial['next_batch']}&timeout=10000", user=alice)
        )
        await asyncio.sleep(0.3)
        await _type(first, bob, room)
        body = await asyncio.wait_for(poll, 5)
        ephemeral = body["rooms"]["join"][room]["ephemeral"]["events"]
        assert {"type": "m.typing", "content": {"user_ids": [bob.user_id]}} in ephemeral

    async def test_a_change_whose_bus_message_was_lost_is_shown_after_the_next_sweep(
        self,
        start_app: AppFactory,
        shared: dict[str, Any],
        store: Callable[[MatrixClient], TypingState],
    ) -> None:
        """Syncs compare tokens with the serial known in memory; a process that missed
        another's message (its bus was away) learns the serial from the store at its
        next sweep, so its syncs show the change."""
        server = await start_app(**shared)
        alice, bob, room = await server.room_of_two()
        initial = await server.ok("GET", "sync", user=alice)
        # Another process's change, whose message never arrived: straight into the store.
        serial = await store(server).set(room, bob.user_id, now_ms() + 60_000, now_ms())
        assert serial > 0

        async def known() -> bool:
            return await server.app[TYPING].current_serial() >= serial

        await server.eventually(known)
        body = await server.ok("GET", f"sync?since={initial['next_batch']}", user=alice)
        ephemeral = body["rooms"]["join"][room]["ephemeral"]["events"]
        assert {"type": "m.typing", "content": {"user_ids": [bob.user_id]}} in ephemeral


class TestTypingSharedThroughRedis(SharedTyping):
    @pytest.fixture
    def shared(self, redis_url: str) -> dict[str, Any]:
        return {"redis": {"url": redis_url}}

    @pytest.fixture
    async def store(self, redis_url: str) -> AsyncIterator[Callable[[MatrixClient], TypingState]]:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        yield lambda server: RedisTypingState(client, server.app[SERVER_NAME])
        await client.aclose()


class TestTypingSharedThroughPostgres(SharedTyping):
    """Workers without Redis: typing in PostgreSQL, wake-ups over LISTEN/NOTIFY."""

    @pytest.fixture
    def shared(self) -> dict[str, Any]:
        return {"bus": "postgres"}

    @pytest.fixture
    def store(self) -> Callable[[MatrixClient], TypingState]:
        return lambda server: PostgresTypingState(server.app[POOL])


async def test_typing_timeout_is_capped_at_two_minutes(hs: MatrixClient) -> None:
    _, bob, room = await hs.room_of_two()
    state = LocalTypingState()
    bus = LocalBus()
    service = TypingService(hs.app[POOL], Notifier(bus, RecentEvents(hs.app[POOL])), bus, state)
    before = now_ms()
    await service.set_typing(bob.user_id, bob.user_id, room, True, 24 * 3600 * 1000)
    _, _, expires_at = await state.expire(now_ms())
    assert expires_at is not None and expires_at <= now_ms() + MAX_TIMEOUT_MS
    assert expires_at >= before + MAX_TIMEOUT_MS


async def test_expired_typer_is_left_out_before_the_sweep_runs() -> None:
    state = LocalTypingState()
    await state.set("!r:x", "@u:x", 2_000, 1_000)
    assert await state.typing(["!r:x"], None, 1_500) == {"!r:x": ["@u:x"]}
    assert await state.typing(["!r:x"], None, 2_000) == {}
