"""`audit replay`: the projections are a fold of the log, whatever clients did to it."""

from __future__ import annotations

import asyncio
import io
import json
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homeserver.api.app_keys import SIGNING_KEYS
from homeserver.audit.export import export_log, verify_export
from homeserver.audit.purge import purge_redacted
from homeserver.audit.replay import ReplayError, replay
from tests.audit_log import assert_replay_identical, replayed, server_verifier, verify
from tests.conftest import AppFactory
from tests.matrix import MatrixClient, User
from tests.processes import run_homeserver


async def _assert_replay_identical_and_log_verifies(hs: MatrixClient, dsn: str) -> None:
    await assert_replay_identical(dsn)
    failure = await verify(dsn, server_verifier(hs))
    assert failure is None, str(failure)


async def _scenario(hs: MatrixClient) -> tuple[User, str]:
    """What a busy room goes through: every kind of fact a projection is made of."""
    alice, bob, carol, dave = await asyncio.gather(*(hs.register() for _ in range(4)))
    room = await hs.create_room(
        alice, preset="public_chat", name="replayed", topic="t", room_alias_name="replayed"
    )
    for user in (bob, carol, dave):
        await hs.join(user, room)
    first = await hs.send(bob, room, {"msgtype": "m.text", "body": "hello"})
    await hs.send(
        bob,
        room,
        {
            "msgtype": "m.text",
            "body": "* hello!",
            "m.new_content": {"msgtype": "m.text", "body": "hello!"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": first},
        },
    )
    reaction = await hs.send(
        carol,
        room,
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": first, "key": "+1"}},
        "m.reaction",
    )
    await hs.send(
        dave,
        room,
        {
            "msgtype": "m.text",
            "body": "in a thread",
            "m.relates_to": {"rel_type": "m.thread", "event_id": first},
        },
    )
    levels = await hs.ok("GET", f"rooms/{room}/state/m.room.power_levels", user=alice)
    levels["users"][bob.user_id] = 50
    await hs.ok("PUT", f"rooms/{room}/state/m.room.power_levels", levels, user=alice)
    await hs.ok("PUT", f"rooms/{room}/state/m.room.topic", {"topic": "new topic"}, user=bob)
    await hs.ok("PUT", f"rooms/{room}/redact/{reaction}/r1", {}, user=carol)
    await hs.ok("POST", f"rooms/{room}/receipt/m.read/{first}", {}, user=carol)
    await hs.ok(
        "POST", f"rooms/{room}/read_markers", {"m.fully_read": first, "m.read": first}, user=dave
    )
    await hs.ok("PUT", f"profile/{bob.user_id}/displayname", {"displayname": "Bob"}, user=bob)
    await hs.ok("PUT", f"user/{carol.user_id}/account_data/m.direct", {"x": [room]}, user=carol)
    await hs.ok("PUT", f"user/{carol.user_id}/rooms/{room}/tags/u.work", {"order": 0.5}, user=carol)
    await hs.ok("POST", f"rooms/{room}/kick", {"user_id": dave.user_id}, user=alice)
    await hs.ok("POST", f"rooms/{room}/ban", {"user_id": carol.user_id, "reason": "x"}, user=bob)
    await hs.ok("POST", f"rooms/{room}/unban", {"user_id": carol.user_id}, user=alice)
    await hs.ok("POST", f"rooms/{room}/invite", {"user_id": carol.user_id}, user=alice)
    await hs.join(carol, room)
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=bob)
    await hs.ok("POST", f"rooms/{room}/forget", {}, user=bob)
    await hs.ok("PUT", f"rooms/{room}/redact/{first}/r2", {}, user=alice)
    await hs.ok("PUT", f"devices/{alice.device_id}", {"display_name": "laptop"}, user=alice)
    await hs.ok(
        "POST",
        "user/" + alice.user_id + "/filter",
        {"room": {"timeline": {"limit": 5}}},
        user=alice,
    )
    await hs.ok("POST", "logout", {}, user=dave)
    await hs.ok("DELETE", "directory/room/%23replayed:localhost", user=alice)
    return alice, room


async def test_a_full_scenario_replays_identically_verifies_exports_and_survives_a_purge(
    start_app: AppFactory, fresh_dsn: str, tmp_path: Path
) -> None:
    hs = await start_app(dsn=fresh_dsn)
    await _scenario(hs)
    await _assert_replay_identical_and_log_verifies(hs, fresh_dsn)
    ring = hs.app[SIGNING_KEYS].ring
    out = io.StringIO()
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await export_log(conn, out, ring.server_name, ring.keys, None, 0)
        await asyncio.sleep(0.005)
        purged = await purge_redacted(conn, int(time.time() * 1000))
    finally:
        await conn.close()
    exported = tmp_path / "all.jsonl"
    await asyncio.to_thread(exported.write_text, out.getvalue())
    assert (await verify_export(exported, workers=0)).failure is None
    assert purged.events == 2
    await _assert_replay_identical_and_log_verifies(hs, fresh_dsn)


async def test_replay_names_the_first_differing_rows_of_a_tampered_projection(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    hs = await start_app(dsn=fresh_dsn)
    alice = await hs.register()
    room = await hs.create_room(alice)
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await conn.execute("UPDATE room_members SET membership = 'ban' WHERE room_id = $1", room)
        await conn.execute("DELETE FROM rooms WHERE room_id = $1", room)
    finally:
        await conn.close()
    result = await replayed(fresh_dsn)
    assert not result.identical
    by_table = {difference.table: difference for difference in result.differences}
    assert set(by_table) == {"room_members", "rooms"}
    members = by_table["room_members"]
    assert [row["membership"] for row in members.only_live] == ["ban"]
    assert [row["membership"] for row in members.only_replayed] == ["join"]
    assert by_table["rooms"].only_live == []
    assert [row["room_id"] for row in by_table["rooms"].only_replayed] == [room]
    assert "only replayed" in by_table["rooms"].describe()


async def test_replay_keeps_its_schema_only_when_asked(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    hs = await start_app(dsn=fresh_dsn)
    await hs.create_room(await hs.register())
    assert (await replayed(fresh_dsn)).identical
    conn = await asyncpg.connect(fresh_dsn)
    try:
        schemas = "SELECT count(*) FROM pg_namespace WHERE nspname = 'audit_replay'"
        assert await conn.fetchval(schemas) == 0
        kept = await replay(conn, keep=True)
        assert kept.identical and kept.kept
        assert await conn.fetchval("SELECT count(*) FROM audit_replay.rooms") == 1
        with pytest.raises(ReplayError, match="already exists"):
            await replay(conn)
        with pytest.raises(ReplayError, match="not a usable schema name"):
            await replay(conn, schema="public")
    finally:
        await conn.close()


async def test_audit_replay_command_exits_0_then_1_showing_the_rows(
    start_app: AppFactory, fresh_dsn: str, data_dir: Path, tmp_path: Path
) -> None:
    hs = await start_app(dsn=fresh_dsn)
    alice = await hs.register()
    room = await hs.create_room(alice)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"database": {"dsn": fresh_dsn}, "data_dir": str(data_dir)}))

    async def audit_replay() -> tuple[int, str, str]:
        outcome = await run_homeserver("audit", "replay", "--config", str(config))
        return outcome.code, outcome.stdout, outcome.stderr

    code, out, err = await audit_replay()
    assert code == 0, err
    assert out.startswith("ok: ") and "identical" in out and "events/s" in out
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await conn.execute(
            "UPDATE rooms SET creator = '@mallory:localhost' WHERE room_id = $1", room
        )
    finally:
        await conn.close()
    code, out, err = await audit_replay()
    assert code == 1
    assert "rooms:" in err and "@mallory:localhost" in err and alice.user_id in err


# --- random client activity, replayed ---------------------------------------------------------

USERS = 3
ROOMS = 2
operations = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(0, USERS - 1), st.integers(0, ROOMS - 1)),
        st.tuples(st.just("join"), st.integers(0, USERS - 1), st.integers(0, ROOMS - 1)),
        st.tuples(st.just("leave"), st.integers(1, USERS - 1), st.integers(0, ROOMS - 1)),
        st.tuples(st.just("ban"), st.integers(1, USERS - 1), st.integers(0, ROOMS - 1)),
        st.tuples(st.just("unban"), st.integers(1, USERS - 1), st.integers(0, ROOMS - 1)),
        st.tuples(st.just("redact"), st.integers(0, USERS - 1), st.integers(0, ROOMS - 1)),
        st.tuples(st.just("edit"), st.integers(0, USERS - 1), st.integers(0, ROOMS - 1)),
        st.tuples(st.just("react"), st.integers(0, USERS - 1), st.integers(0, ROOMS - 1)),
        st.tuples(st.just("topic"), st.integers(0, USERS - 1), st.integers(0, ROOMS - 1)),
        st.tuples(st.just("power"), st.integers(1, USERS - 1), st.integers(0, ROOMS - 1)),
        st.tuples(st.just("receipt"), st.integers(0, USERS - 1), st.integers(0, ROOMS - 1)),
        st.tuples(st.just("name"), st.integers(0, USERS - 1), st.integers(0, ROOMS - 1)),
    ),
    min_size=1,
    max_size=25,
)


async def _apply(
    hs: MatrixClient, users: list[User], rooms: list[str], sent: dict[str, list[str]], op: Any
) -> None:
    kind, who, which = op
    user, room = users[who], rooms[which]
    owner = users[0]
    targets = sent[room]
    path = f"rooms/{room}/"
    if kind == "send":
        reply = await hs.request(
            "PUT",
            path + f"send/m.room.message/{time.monotonic_ns()}",
            {"msgtype": "m.text", "body": f"m{len(targets)}"},
            user=user,
        )
        if reply.status == 200:
            targets.append(reply.body["event_id"])
        return
    if kind == "join":
        reply = await hs.request("POST", f"join/{room}", {}, user=user)
    elif kind == "leave":
        reply = await hs.request("POST", path + "leave", {}, user=user)
    elif kind in ("ban", "unban"):
        reply = await hs.request("POST", path + kind, {"user_id": user.user_id}, user=owner)
    elif kind == "topic":
        reply = await hs.request("PUT", path + "state/m.room.topic", {"topic": "t"}, user=user)
    elif kind == "power":
        levels = await hs.ok("GET", path + "state/m.room.power_levels", user=owner)
        levels["users"][user.user_id] = 50 if levels["users"].get(user.user_id) != 50 else 0
        reply = await hs.request("PUT", path + "state/m.room.power_levels", levels, user=owner)
    elif kind == "name":
        reply = await hs.request(
            "PUT", f"profile/{user.user_id}/displayname", {"displayname": f"n{who}"}, user=user
        )
    elif not targets:
        return
    elif kind == "redact":
        reply = await hs.request(
            "PUT", path + f"redact/{targets[-1]}/{time.monotonic_ns()}", {}, user=user
        )
    elif kind == "edit":
        content = {
            "msgtype": "m.text",
            "body": "* e",
            "m.new_content": {"msgtype": "m.text", "body": "e"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": targets[0]},
        }
        reply = await hs.request(
            "PUT", path + f"send/m.room.message/{time.monotonic_ns()}", content, user=user
        )
    elif kind == "react":
        content = {
            "m.relates_to": {"rel_type": "m.annotation", "event_id": targets[-1], "key": "k"}
        }
        reply = await hs.request(
            "PUT", path + f"send/m.reaction/{time.monotonic_ns()}", content, user=user
        )
    else:
        reply = await hs.request("POST", path + f"receipt/m.read/{targets[-1]}", {}, user=user)
    assert reply.status < 500, (op, reply)


@pytest.fixture
async def busy_server(start_app: AppFactory, fresh_dsn: str) -> tuple[MatrixClient, str]:
    """One server and database for every example: each adds to the log; replay covers it all."""
    return await start_app(dsn=fresh_dsn), fresh_dsn


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
async def test_random_client_activity_replays_identically_and_verifies_before_and_after_a_purge(
    busy_server: tuple[MatrixClient, str], ops: list[Any]
) -> None:
    hs, dsn = busy_server
    users = list(await asyncio.gather(*(hs.register() for _ in range(USERS))))
    rooms = [await hs.create_room(users[0], preset="public_chat") for _ in range(ROOMS)]
    sent: dict[str, list[str]] = {room: [] for room in rooms}
    for op in ops:
        await _apply(hs, users, rooms, sent, op)
    await _assert_replay_identical_and_log_verifies(hs, dsn)
    # And once the content of what was redacted is purged.
    await asyncio.sleep(0.002)
    conn = await asyncpg.connect(dsn)
    try:
        await purge_redacted(conn, int(time.time() * 1000))
    finally:
        await conn.close()
    await _assert_replay_identical_and_log_verifies(hs, dsn)
