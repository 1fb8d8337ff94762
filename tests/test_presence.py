"""Presence: set and read it, who may see it, what syncs change and receive, and the
timeouts; in one process and shared through Redis."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nio  # type: ignore[import-untyped]
import pytest
import redis.asyncio as aioredis

from homeserver.api.app_keys import POOL, SERVER_NAME
from homeserver.api.presence import PRESENCE
from homeserver.clock import now_ms
from homeserver.presence.heard import HeardChanges
from homeserver.presence.rules import (
    NOBODY,
    Timeouts,
    UserPresence,
    acted,
    chosen,
    deadline,
    expired,
    synced,
)
from homeserver.presence.state import (
    LocalPresenceState,
    PostgresPresenceState,
    PresenceState,
    RedisPresenceState,
)
from homeserver.sync.tokens import SyncToken
from tests.conftest import AppFactory
from tests.matrix import MatrixClient, User
from tests.test_interop_nio import RecordingClient

Start = Callable[..., Awaitable[MatrixClient]]


async def _set(hs: MatrixClient, user: User, presence: str, status_msg: str | None = None) -> None:
    body: dict[str, Any] = {"presence": presence}
    if status_msg is not None:
        body["status_msg"] = status_msg
    assert await hs.ok("PUT", f"presence/{user.user_id}/status", body, user=user) == {}


async def _get(hs: MatrixClient, viewer: User, user: User) -> dict[str, Any]:
    body: dict[str, Any] = await hs.ok("GET", f"presence/{user.user_id}/status", user=viewer)
    return body


def _presence_of(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """sender -> content of the sync's m.presence events (the last one per sender)."""
    found: dict[str, dict[str, Any]] = {}
    for event in body["presence"]["events"]:
        assert event["type"] == "m.presence"
        found[event["sender"]] = event["content"]
    return found


class PresenceBehaviour:
    """What every presence store must do; subclasses provide `start` (config overrides)."""

    @pytest.fixture
    async def server(self, start: Start) -> MatrixClient:
        return await start()

    # PUT and GET

    async def test_own_presence_and_status_message_can_be_set_and_read(
        self, server: MatrixClient
    ) -> None:
        alice = await server.register()
        await _set(server, alice, "online", "at my desk")
        status = await _get(server, alice, alice)
        assert status["presence"] == "online"
        assert status["status_msg"] == "at my desk"
        assert status["currently_active"] is True
        assert 0 <= status["last_active_ago"] < 5_000

    async def test_a_user_who_never_showed_up_is_offline(self, server: MatrixClient) -> None:
        alice = await server.register()
        assert await _get(server, alice, alice) == {
            "presence": "offline",
            "currently_active": False,
        }

    async def test_setting_presence_without_a_message_clears_the_message(
        self, server: MatrixClient
    ) -> None:
        alice = await server.register()
        await _set(server, alice, "unavailable", "lunch")
        await _set(server, alice, "unavailable")
        status = await _get(server, alice, alice)
        assert status["presence"] == "unavailable"
        assert "status_msg" not in status
        assert status["currently_active"] is False

    async def test_cannot_set_someone_elses_presence(self, server: MatrixClient) -> None:
        alice, bob, _ = await server.room_of_two()
        reply = await server.request(
            "PUT", f"presence/{alice.user_id}/status", {"presence": "offline"}, user=bob
        )
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"presence": "busy"},
            {"presence": 1},
            {"presence": "online", "status_msg": 5},
        ],
    )
    async def test_malformed_presence_body_is_rejected(
        self, server: MatrixClient, body: dict[str, Any]
    ) -> None:
        alice = await server.register()
        reply = await server.request("PUT", f"presence/{alice.user_id}/status", body, user=alice)
        assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")

    async def test_room_mate_sees_presence(self, server: MatrixClient) -> None:
        alice, bob, _ = await server.room_of_two()
        await _set(server, bob, "unavailable", "in a meeting")
        status = await _get(server, alice, bob)
        assert status["presence"] == "unavailable"
        assert status["status_msg"] == "in a meeting"

    async def test_presence_of_a_stranger_is_forbidden(self, server: MatrixClient) -> None:
        alice, _, _ = await server.room_of_two()
        stranger = await server.register()
        await _set(server, stranger, "online")
        reply = await server.request("GET", f"presence/{stranger.user_id}/status", user=alice)
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
        reply = await server.request("GET", "presence/@nobody:localhost/status", user=alice)
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")

    async def test_presence_is_hidden_again_after_leaving_the_shared_room(
        self, server: MatrixClient
    ) -> None:
        alice, bob, room = await server.room_of_two()
        await server.sync(bob)  # bob's client comes online

        async def online() -> bool:
            return (await _get(server, alice, bob))["presence"] == "online"

        await server.eventually(online)
        await server.ok("POST", f"rooms/{room}/leave", {}, user=bob)
        reply = await server.request("GET", f"presence/{bob.user_id}/status", user=alice)
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")

    async def test_a_broadcast_channel_does_not_share_presence(self, server: MatrixClient) -> None:
        owner, subscriber = await server.register(), await server.register()
        channel = await server.create_room(
            owner, preset="public_chat", creation_content={"type": "com.linkchat.channel"}
        )
        await server.join(subscriber, channel)
        first = await server.ok("GET", "sync", user=subscriber)
        assert owner.user_id not in _presence_of(first)
        await _set(server, owner, "online")
        reply = await server.request("GET", f"presence/{owner.user_id}/status", user=subscriber)
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
        await _set(server, subscriber, "unavailable")
        later = await server.ok("GET", f"sync?since={first['next_batch']}", user=subscriber)
        assert set(_presence_of(later)) == {subscriber.user_id}

    async def test_a_room_above_the_size_limit_does_not_share_presence(self, start: Start) -> None:
        server = await start(presence={"max_room_members": 2})
        alice, bob, room = await server.room_of_two()
        await _set(server, bob, "online")
        assert (await _get(server, alice, bob))["presence"] == "online"
        carol = await server.register()
        await server.join(carol, room)
        reply = await server.request("GET", f"presence/{bob.user_id}/status", user=carol)
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")

    # What syncing does to presence

    async def test_syncing_brings_an_offline_user_online(self, server: MatrixClient) -> None:
        alice = await server.register()
        await server.ok("GET", "sync", user=alice)
        status = await _get(server, alice, alice)
        assert status["presence"] == "online"
        assert status["currently_active"] is True

    async def test_syncing_with_set_presence_offline_leaves_the_user_offline(
        self, server: MatrixClient
    ) -> None:
        alice = await server.register()
        await server.ok("GET", "sync?set_presence=offline", user=alice)
        assert (await _get(server, alice, alice))["presence"] == "offline"

    async def test_syncing_with_set_presence_unavailable_marks_the_user_idle(
        self, server: MatrixClient
    ) -> None:
        alice = await server.register()
        await server.ok("GET", "sync", user=alice)
        await server.ok("GET", "sync?set_presence=unavailable", user=alice)
        status = await _get(server, alice, alice)
        assert status["presence"] == "unavailable"
        assert status["currently_active"] is False

    async def test_bad_set_presence_value_is_rejected(self, server: MatrixClient) -> None:
        alice = await server.register()
        reply = await server.request("GET", "sync?set_presence=busy", user=alice)
        assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")

    async def test_a_chosen_unavailable_is_kept_by_a_default_sync(
        self, server: MatrixClient
    ) -> None:
        # Element sets idle by PUT while its long-poll runs with set_presence=online.
        alice = await server.register()
        await server.ok("GET", "sync", user=alice)
        await _set(server, alice, "unavailable", "away")
        await server.sync(alice)
        assert (await _get(server, alice, alice))["presence"] == "unavailable"

    async def test_sending_a_message_makes_an_idle_user_online(self, server: MatrixClient) -> None:
        alice, _, room = await server.room_of_two()
        await _set(server, alice, "unavailable")
        await server.send(alice, room)

        async def online() -> bool:
            status = await _get(server, alice, alice)
            return status["presence"] == "online" and status["currently_active"] is True

        await server.eventually(online)

    # The sync's presence section

    async def test_initial_sync_has_the_presence_of_room_mates_only(
        self, server: MatrixClient
    ) -> None:
        alice, bob, _ = await server.room_of_two()
        stranger = await server.register()
        await _set(server, bob, "online", "hi")
        await _set(server, stranger, "online")
        body = await server.ok("GET", "sync", user=alice)
        presence = _presence_of(body)
        assert presence[bob.user_id]["presence"] == "online"
        assert presence[bob.user_id]["status_msg"] == "hi"
        assert presence[alice.user_id]["presence"] == "online"  # herself, online by syncing
        assert stranger.user_id not in presence

    async def test_incremental_sync_reports_only_changes_since_its_token(
        self, server: MatrixClient
    ) -> None:
        alice, bob, _ = await server.room_of_two()
        carol = await server.register()
        await server.join(
            carol, (await server.ok("GET", "joined_rooms", user=alice))["joined_rooms"][0]
        )
        await _set(server, bob, "online")
        await _set(server, carol, "online")
        first = await server.ok("GET", "sync", user=alice)
        quiet = await server.ok("GET", f"sync?since={first['next_batch']}", user=alice)
        assert quiet["presence"]["events"] == []
        await _set(server, bob, "unavailable", "brb")
        changed = await server.ok("GET", f"sync?since={quiet['next_batch']}", user=alice)
        assert _presence_of(changed) == {
            bob.user_id: {"presence": "unavailable", "currently_active": False, "status_msg": "brb"}
            | {"last_active_ago": _presence_of(changed)[bob.user_id]["last_active_ago"]}
        }

    async def test_presence_change_of_a_stranger_is_not_sent(self, server: MatrixClient) -> None:
        alice, _, _ = await server.room_of_two()
        stranger = await server.register()
        first = await server.ok("GET", "sync", user=alice)
        await _set(server, stranger, "online", "you cannot see me")
        body = await server.ok("GET", f"sync?since={first['next_batch']}", user=alice)
        assert stranger.user_id not in _presence_of(body)

    async def test_presence_change_wakes_a_room_mates_long_poll(self, server: MatrixClient) -> None:
        alice, bob, _ = await server.room_of_two()
        first = await server.ok("GET", "sync", user=alice)
        poll = asyncio.create_task(
            server.ok("GET", f"sync?since={first['next_batch']}&timeout=10000", user=alice)
        )
        await asyncio.sleep(0.3)
        started = time.monotonic()
        await _set(server, bob, "online", "here")
        body = await asyncio.wait_for(poll, 5)
        assert time.monotonic() - started < 3
        assert _presence_of(body)[bob.user_id]["status_msg"] == "here"

    async def test_token_without_a_presence_part_still_works(self, server: MatrixClient) -> None:
        alice, bob, _ = await server.room_of_two()
        await _set(server, bob, "online")
        first = await server.ok("GET", "sync", user=alice)
        token = SyncToken.parse(first["next_batch"])
        old_style = f"s{token.events}_{token.typing}_{token.to_device}"
        body = await server.ok("GET", f"sync?since={old_style}", user=alice)
        assert _presence_of(body)[bob.user_id]["presence"] == "online"
        assert SyncToken.parse(body["next_batch"]).presence >= token.presence

    async def test_a_filter_can_leave_presence_out(self, server: MatrixClient) -> None:
        alice, bob, _ = await server.room_of_two()
        await _set(server, bob, "online")
        no_presence = json.dumps({"presence": {"not_types": ["*"]}})
        body = await server.ok("GET", f"sync?filter={no_presence}", user=alice)
        assert body["presence"]["events"] == []
        only_bob = json.dumps({"presence": {"senders": [bob.user_id]}})
        body = await server.ok("GET", f"sync?filter={only_bob}", user=alice)
        assert set(_presence_of(body)) == {bob.user_id}

    # Timeouts

    async def test_online_user_without_activity_becomes_idle(self, start: Start) -> None:
        server = await start(presence={"idle_timeout_seconds": 1})
        alice, bob, _ = await server.room_of_two()
        first = await server.ok("GET", "sync?set_presence=offline", user=alice)
        await _set(server, bob, "online")

        async def idle() -> bool:
            return (await _get(server, alice, bob))["presence"] == "unavailable"

        await server.eventually(idle)
        status = await _get(server, alice, bob)
        assert status["currently_active"] is False
        assert status["last_active_ago"] >= 1_000
        # Room-mates are told: the timeout is a change like any other.
        body = await server.ok(
            "GET", f"sync?since={first['next_batch']}&set_presence=offline", user=alice
        )
        assert _presence_of(body)[bob.user_id]["presence"] == "unavailable"

    async def test_user_goes_offline_when_their_syncs_stop(self, start: Start) -> None:
        server = await start(presence={"offline_timeout_seconds": 1})
        alice, bob, _ = await server.room_of_two()
        first = await server.ok("GET", "sync?set_presence=offline", user=alice)
        await server.ok("GET", "sync", user=bob)
        assert (await _get(server, alice, bob))["presence"] == "online"

        async def offline() -> bool:
            return (await _get(server, alice, bob))["presence"] == "offline"

        await server.eventually(offline)
        body = await server.ok(
            "GET", f"sync?since={first['next_batch']}&set_presence=offline", user=alice
        )
        assert _presence_of(body)[bob.user_id]["presence"] == "offline"

    async def test_a_long_poll_in_flight_keeps_the_user_online(self, start: Start) -> None:
        server = await start(presence={"offline_timeout_seconds": 1})
        alice, bob, _ = await server.room_of_two()
        first = await server.ok("GET", "sync", user=bob)
        # Without presence in it, alice going offline does not end bob's long-poll.
        no_presence = json.dumps({"presence": {"not_types": ["*"]}})
        started = time.monotonic()
        poll = asyncio.create_task(
            server.ok(
                "GET",
                f"sync?since={first['next_batch']}&timeout=2500&filter={no_presence}",
                user=bob,
            )
        )
        await asyncio.sleep(2)  # twice the offline timeout, inside one long-poll
        assert (await _get(server, alice, bob))["presence"] == "online"
        await poll
        assert time.monotonic() - started >= 2.4

    # Disabled

    async def test_disabled_presence_answers_but_tracks_nothing(self, start: Start) -> None:
        server = await start(presence={"enabled": False})
        alice, bob, _ = await server.room_of_two()
        await _set(server, bob, "online", "ignored")
        await server.ok("GET", "sync", user=bob)
        assert await _get(server, alice, bob) == {"presence": "offline", "currently_active": False}
        body = await server.ok("GET", "sync", user=alice)
        assert body["presence"]["events"] == []
        stranger = await server.register()
        reply = await server.request("GET", f"presence/{stranger.user_id}/status", user=alice)
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
        reply = await server.request(
            "PUT", f"presence/{alice.user_id}/status", {"presence": "online"}, user=bob
        )
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")


class TestPresenceInOneProcess(PresenceBehaviour):
    @pytest.fixture
    def start(self, start_app: AppFactory) -> Start:
        return start_app


class TestPresenceSharedThroughRedis(PresenceBehaviour):
    @pytest.fixture
    def start(self, start_app: AppFactory, redis_url: str) -> Start:
        def start(**overrides: Any) -> Awaitable[MatrixClient]:
            # Its own namespace (the server name) in a Redis that every test server on
            # this machine shares: a server sweeps the timeouts of its whole namespace
            # with its own timeouts, so one started with other timeouts (or left
            # running by another run) would time our users out by its rules.
            name = f"pr{secrets.token_hex(4)}.test"
            return start_app(redis={"url": redis_url}, server_name=name, **overrides)

        return start

    async def test_a_change_whose_bus_message_was_lost_is_still_sent(
        self, start: Start, redis_url: str
    ) -> None:
        """Syncs learn who changed from the bus messages the process heard; a change
        whose message never came leaves a gap in those, and the store fills it."""
        server = await start()
        alice, bob, room = await server.room_of_two()
        carol = await server.register()
        await server.join(carol, room)
        first = await server.ok("GET", "sync?set_presence=offline", user=alice)
        # Another process's change whose message was lost: straight into the store.
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            store = RedisPresenceState(
                client, server.app[SERVER_NAME], server.app[PRESENCE].timeouts
            )
            await store.update(bob.user_id, lambda r: chosen(r, "unavailable", "lost", now_ms()))
        finally:
            await client.aclose()
        await _set(server, carol, "online")  # heard: the position moves past the lost one
        body = await server.ok(
            "GET", f"sync?since={first['next_batch']}&set_presence=offline", user=alice
        )
        seen = _presence_of(body)
        assert seen[bob.user_id]["status_msg"] == "lost"
        assert seen[carol.user_id]["presence"] == "online"


# The rules, without a server

TIMEOUTS = Timeouts(idle_ms=300_000, offline_ms=30_000)


def test_rules_follow_a_user_through_a_day() -> None:
    came = synced(NOBODY, "online", 1_000)
    assert (came.presence, came.currently_active, came.last_active_ts) == ("online", True, 1_000)
    # Syncing again is not activity.
    assert synced(came, "online", 50_000).last_active_ts == 1_000
    connected = synced(came, "online", 61_000)
    assert expired(connected, 61_000, TIMEOUTS).currently_active is False
    assert expired(connected, 61_000, TIMEOUTS).presence == "online"
    still = synced(connected, "online", 300_000)
    assert expired(still, 301_000, TIMEOUTS).presence == "unavailable"
    back = acted(expired(still, 301_000, TIMEOUTS), 302_000)
    assert (back.presence, back.currently_active) == ("online", True)
    assert expired(back, 302_000 + 30_000, TIMEOUTS).presence == "offline"


def test_activity_from_before_a_chosen_presence_does_not_undo_it() -> None:
    # The service notes activity after the fact: a join sent at 1,000 may be applied
    # after the user chose "unavailable" at 2,000.
    online = synced(NOBODY, "online", 500)
    away = chosen(online, "unavailable", "in a meeting", 2_000)
    late = acted(away, 1_000)
    assert (late.presence, late.status_msg, late.currently_active) == (
        "unavailable",
        "in a meeting",
        False,
    )
    assert late.last_active_ts == 1_000
    # Activity after the choice brings them back.
    assert acted(away, 3_000).presence == "online"
    assert acted(synced(online, "unavailable", 2_000), 1_500).presence == "unavailable"


def test_deadline_is_when_the_record_next_times_out() -> None:
    record = chosen(NOBODY, "online", None, 10_000)
    due = deadline(record, TIMEOUTS)
    assert due == 10_000 + 30_000  # offline first: nobody syncs after the PUT
    assert expired(record, due - 1, TIMEOUTS) == record
    assert expired(record, due, TIMEOUTS) != record
    assert deadline(UserPresence(), TIMEOUTS) is None


def test_touch_interval_stays_under_every_timeout() -> None:
    assert TIMEOUTS.touch_interval_ms == 5_000
    short = Timeouts(idle_ms=1_000, offline_ms=1_000)
    assert short.touch_interval_ms == 250


@pytest.mark.parametrize("kind", ["local", "postgres", "redis"])
async def test_heartbeats_move_only_the_time_in_one_go_and_leave_the_rest(
    kind: str, hs: MatrixClient, redis_url: str
) -> None:
    """A store's `touch`: users still connected keep their presence (nothing visible,
    no position) and their timeout moves; an offline user, or one with no record yet,
    is left to `update` (coming back online is a visible change)."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    state: PresenceState = {
        "local": lambda: LocalPresenceState(TIMEOUTS),
        "postgres": lambda: PostgresPresenceState(hs.app[POOL], TIMEOUTS),
        "redis": lambda: RedisPresenceState(client, f"hb{secrets.token_hex(4)}.test", TIMEOUTS),
    }[kind]()
    try:
        await state.open()
        online = await state.update("@on:x", lambda r: synced(r, "online", 1_000))
        await state.update("@off:x", lambda r: synced(r, "offline", 1_000))
        position = await state.position()
        left = await state.touch({"@on:x": 20_000, "@off:x": 20_000, "@new:x": 20_000})
        assert sorted(left) == ["@new:x", "@off:x"]
        records = await state.get(["@on:x"])
        assert records["@on:x"].last_sync_ts == 20_000
        assert records["@on:x"].position == online.record.position
        assert await state.position() == position
        # Its offline timeout moved with it: not due at the old one.
        assert "@on:x" not in (await state.due(1_000 + TIMEOUTS.offline_ms, 10))[0]
        assert "@on:x" in (await state.due(20_000 + TIMEOUTS.offline_ms, 10))[0]
    finally:
        await client.aclose()


async def test_local_store_lists_changes_after_a_position_and_due_timeouts() -> None:
    state = LocalPresenceState(TIMEOUTS)
    start = await state.position()
    first = await state.update("@a:x", lambda r: chosen(r, "online", None, 1_000))
    second = await state.update("@b:x", lambda r: chosen(r, "online", None, 2_000))
    assert first.visible and second.visible
    assert await state.changed(start, await state.position()) == ["@b:x", "@a:x"]
    assert await state.changed(first.record.position, await state.position()) == ["@b:x"]
    # Only times changing is stored but takes no position.
    quiet = await state.update("@a:x", lambda r: synced(r, "online", 5_000))
    assert quiet.changed and not quiet.visible
    assert await state.changed(second.record.position, await state.position()) == []
    # Offline timeouts: @b at 2 s + 30 s; @a at its last sync, 5 s + 30 s.
    assert await state.due(31_000, 10) == ([], 32_000)
    assert await state.due(32_000, 10) == (["@b:x"], 35_000)
    assert await state.due(35_000, 10) == (["@a:x"], None)


def test_changes_heard_answer_only_without_a_gap() -> None:
    heard = HeardChanges(size=4)
    for position, user in ((11, "@a:x"), (12, "@b:x"), (14, "@a:x")):
        heard.heard(position, user)
    assert heard.changed(10, 12) == ["@a:x", "@b:x"]
    assert heard.changed(12, 12) == []
    # 13 was not heard of (a message on the way, or lost): only the store knows.
    assert heard.changed(12, 14) is None
    heard.heard(13, "@c:x")
    assert heard.changed(10, 14) == ["@a:x", "@b:x", "@c:x"]
    # Further back than it remembers.
    heard.heard(15, "@d:x")
    assert heard.changed(10, 15) is None
    assert heard.changed(11, 15) == ["@b:x", "@c:x", "@a:x", "@d:x"]
    # One user's own changes, as a sync of someone sharing presence with nobody asks.
    assert heard.changed_user("@b:x", 11, 15) is True
    assert heard.changed_user("@b:x", 12, 15) is False
    assert heard.changed_user("@a:x", 11, 13) is False  # @a's change 11 is not in it
    assert heard.changed_user("@c:x", 11, 12) is False
    assert heard.changed_user("@a:x", 11, 14) is True
    assert heard.changed_user("@a:x", 10, 15) is None  # 11 forgotten


async def test_matrix_nio_sets_reads_and_syncs_presence(hs: MatrixClient) -> None:
    alice, bob, _ = await hs.room_of_two()
    clients = []
    for user in (alice, bob):
        client = RecordingClient(hs.base_url, user.user_id)
        client.restore_login(user.user_id, user.device_id, user.token)
        clients.append(client)
    nio_alice, nio_bob = clients
    try:
        first = await nio_bob.sync(timeout=0, set_presence="offline")
        assert isinstance(first, nio.SyncResponse), first
        assert isinstance(
            await nio_alice.set_presence("unavailable", "reading"), nio.PresenceSetResponse
        )
        got = await nio_bob.get_presence(alice.user_id)
        assert isinstance(got, nio.PresenceGetResponse), got
        assert (got.presence, got.status_msg) == ("unavailable", "reading")
        synced_body = await nio_bob.sync(timeout=5_000, set_presence="offline")
        assert isinstance(synced_body, nio.SyncResponse), synced_body
        by_sender = {e.user_id: e for e in synced_body.presence_events}
        assert by_sender[alice.user_id].presence == "unavailable"
        assert by_sender[alice.user_id].status_msg == "reading"
    finally:
        for client in clients:
            await client.close()
