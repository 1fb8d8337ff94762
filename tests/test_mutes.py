"""Mutes (/_linkchat/v1/rooms/{roomId}/mutes): a muted user is held below the room's
events_default through its power levels, by the muter's own power, until someone
unmutes them or their time runs out, which the server's expiry follower notices even
across a restart."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import jsonschema
import pytest

from homeserver.events.content.mutes import MuteContent
from tests.audit_log import assert_replay_identical
from tests.conftest import AppFactory
from tests.matrix import MatrixClient, Reply, User
from tests.test_event_schemas import SPEC_EVENTS
from tests.test_openapi import V1, _exchange

MUTE_EXPIRY = "moderation.mute_expiry"
# How long an expiry may take to show on a busy machine.
EXPIRY_SECONDS = 30.0


def mutes_path(room: str, user: User | str | None = None) -> str:
    path = f"/_linkchat/v1/rooms/{room}/mutes"
    if user is None:
        return path
    return f"{path}/{user.user_id if isinstance(user, User) else user}"


async def mute(hs: MatrixClient, muter: User, room: str, user: User, **body: Any) -> Any:
    return await hs.ok("PUT", mutes_path(room, user), body, user=muter)


async def listed(hs: MatrixClient, viewer: User, room: str) -> list[dict[str, Any]]:
    body = await hs.ok("GET", mutes_path(room), user=viewer)
    return list(body["mutes"])


async def levels(hs: MatrixClient, viewer: User, room: str) -> dict[str, Any]:
    return dict(await hs.ok("GET", f"rooms/{room}/state/m.room.power_levels/", user=viewer))


async def send_refused(hs: MatrixClient, user: User, room: str) -> Reply:
    return await hs.request(
        "PUT",
        f"rooms/{room}/send/m.room.message/{id(object())}",
        {"msgtype": "m.text", "body": "let me speak"},
        user=user,
    )


def assert_refused(reply: Reply, status: int, errcode: str) -> None:
    assert (reply.status, reply.errcode) == (status, errcode), reply


# --- muting and unmuting --------------------------------------------------------------


async def test_a_muted_member_cannot_send_until_unmuted(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    await hs.send(bob, room)
    muted = await mute(hs, alice, room, bob, reason="flooding")
    assert muted["user_id"] == bob.user_id and muted["muted_by"] == alice.user_id
    assert muted["expires_ts"] is None and muted["reason"] == "flooding"

    assert_refused(await send_refused(hs, bob, room), 403, "M_FORBIDDEN")
    power = await levels(hs, alice, room)
    assert power["users"][bob.user_id] == power.get("events_default", 0) - 1
    # Anyone in the room sees who is muted, by whom and why.
    for viewer in (alice, bob):
        [entry] = await listed(hs, viewer, room)
        assert entry == {**muted, "muted_ts": entry["muted_ts"]}
        assert entry["muted_ts"] > 0

    assert await hs.ok("DELETE", mutes_path(room, bob), user=alice) == {}
    assert await listed(hs, alice, room) == []
    assert bob.user_id not in (await levels(hs, alice, room))["users"]
    await hs.send(bob, room)


async def test_unmuting_gives_back_the_level_the_user_had(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    await hs.set_level(alice, room, bob, 20)
    await mute(hs, alice, room, bob)
    assert (await levels(hs, alice, room))["users"][bob.user_id] == -1
    # Muted again: a new end and reason, the same level to give back.
    again = await mute(hs, alice, room, bob, duration_ms=3_600_000, reason="still at it")
    assert again["expires_ts"] is not None and again["reason"] == "still at it"
    [entry] = await listed(hs, alice, room)
    assert entry["expires_ts"] == again["expires_ts"]
    await hs.ok("DELETE", mutes_path(room, bob), user=alice)
    assert (await levels(hs, alice, room))["users"][bob.user_id] == 20


async def test_a_level_changed_during_the_mute_stands_after_it(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    await mute(hs, alice, room, bob)
    await hs.set_level(alice, room, bob, 10)
    await hs.ok("DELETE", mutes_path(room, bob), user=alice)
    assert (await levels(hs, alice, room))["users"][bob.user_id] == 10
    assert await listed(hs, alice, room) == []


async def test_a_room_that_lets_everyone_speak_at_a_higher_level_mutes_below_it(
    hs: MatrixClient,
) -> None:
    alice, bob, room = await hs.room_of_two()
    power = await levels(hs, alice, room)
    await hs.ok(
        "PUT",
        f"rooms/{room}/state/m.room.power_levels/",
        {**power, "events_default": 10, "users": {**power["users"], bob.user_id: 30}},
        user=alice,
    )
    await mute(hs, alice, room, bob)
    assert (await levels(hs, alice, room))["users"][bob.user_id] == 9
    assert_refused(await send_refused(hs, bob, room), 403, "M_FORBIDDEN")


# --- who may mute ---------------------------------------------------------------------


async def test_muting_takes_the_power_to_change_power_levels(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    carol = await hs.register()
    await hs.join(carol, room)
    # A member cannot; a moderator below the power levels' level cannot either.
    assert_refused(
        await hs.request("PUT", mutes_path(room, carol), {}, user=bob), 403, "M_FORBIDDEN"
    )
    await hs.set_level(alice, room, bob, 50)
    assert_refused(
        await hs.request("PUT", mutes_path(room, carol), {}, user=bob), 403, "M_FORBIDDEN"
    )
    # Nobody mutes one at or above their own level, nor themselves.
    assert_refused(
        await hs.request("PUT", mutes_path(room, alice), {}, user=bob), 403, "M_FORBIDDEN"
    )
    assert_refused(
        await hs.request("PUT", mutes_path(room, alice), {}, user=alice), 400, "M_INVALID_PARAM"
    )
    # Unmuting takes the same power.
    await mute(hs, alice, room, carol)
    assert_refused(
        await hs.request("DELETE", mutes_path(room, carol), user=bob), 403, "M_FORBIDDEN"
    )
    assert len(await listed(hs, alice, room)) == 1


async def test_one_outside_the_room_can_neither_mute_nor_list(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    stranger = await hs.register()
    await mute(hs, alice, room, bob)
    for method in ("PUT", "DELETE"):
        reply = await hs.request(method, mutes_path(room, bob), {}, user=stranger)
        assert_refused(reply, 403, "M_FORBIDDEN")
    assert_refused(await hs.request("GET", mutes_path(room), user=stranger), 403, "M_FORBIDDEN")
    # One who left reads no current mutes either.
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=bob)
    assert_refused(await hs.request("GET", mutes_path(room), user=bob), 403, "M_FORBIDDEN")


async def test_no_client_can_write_a_mute_fact_itself(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    reply = await hs.request(
        "PUT",
        f"rooms/{room}/state/com.linkchat.mute/_{bob.user_id}",
        {"level": -1, "previous_level": 0},
        user=alice,
    )
    assert_refused(reply, 403, "M_FORBIDDEN")
    assert await listed(hs, alice, room) == []


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"duration_ms": 0}, "M_INVALID_PARAM"),
        ({"duration_ms": -5}, "M_INVALID_PARAM"),
        ({"duration_ms": 10**15}, "M_INVALID_PARAM"),
        ({"duration_ms": "60000"}, "M_BAD_JSON"),
        ({"duration_ms": 1.5}, "M_BAD_JSON"),
        ({"reason": 3}, "M_BAD_JSON"),
        ({"reason": "x" * 1001}, "M_BAD_JSON"),
        ([], "M_BAD_JSON"),
    ],
)
async def test_a_malformed_mute_is_refused(hs: MatrixClient, body: Any, errcode: str) -> None:
    alice, bob, room = await hs.room_of_two()
    assert_refused(await hs.request("PUT", mutes_path(room, bob), body, user=alice), 400, errcode)
    assert await listed(hs, alice, room) == []


async def test_unknown_rooms_users_and_mutes(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    assert_refused(
        await hs.request("DELETE", mutes_path(room, bob), user=alice), 404, "M_NOT_FOUND"
    )
    reply = await hs.request("PUT", mutes_path(room, "@ghost_x:localhost"), {}, user=alice)
    assert_refused(reply, 404, "M_NOT_FOUND")
    reply = await hs.request("PUT", mutes_path("!nowhere:localhost", bob), {}, user=alice)
    assert_refused(reply, 404, "M_NOT_FOUND")
    reply = await hs.request("PUT", mutes_path(room, "not-a-user"), {}, user=alice)
    assert_refused(reply, 400, "M_INVALID_PARAM")
    reply = await hs.request("GET", mutes_path("not-a-room"), user=alice)
    assert_refused(reply, 400, "M_INVALID_PARAM")


async def test_mutes_need_an_access_token(hs: MatrixClient) -> None:
    _, bob, room = await hs.room_of_two()
    for method, path in (
        ("PUT", mutes_path(room, bob)),
        ("DELETE", mutes_path(room, bob)),
        ("GET", mutes_path(room)),
    ):
        assert_refused(await hs.request(method, path, {}), 401, "M_MISSING_TOKEN")


# --- expiry ---------------------------------------------------------------------------


async def test_a_mute_with_a_duration_is_lifted_by_an_event_of_the_muter(
    hs: MatrixClient,
) -> None:
    alice, bob, room = await hs.room_of_two()
    await hs.set_level(alice, room, bob, 5)
    muted = await mute(hs, alice, room, bob, duration_ms=1_000)
    assert isinstance(muted["expires_ts"], int)

    async def lifted() -> bool:
        return await listed(hs, alice, room) == []

    await hs.eventually(lifted, EXPIRY_SECONDS)
    power_event = await hs.ok(
        "GET", f"rooms/{room}/state/m.room.power_levels/?format=event", user=bob
    )
    assert power_event["sender"] == alice.user_id
    assert power_event["content"]["users"][bob.user_id] == 5
    await hs.send(bob, room)


async def _lease_of(conn: asyncpg.Connection) -> int:
    follower_id = await conn.fetchval(
        "SELECT follower_id FROM follower_positions WHERE name = $1", MUTE_EXPIRY
    )
    assert follower_id is not None
    return int(follower_id)


async def test_a_mute_ends_when_its_time_comes_even_across_a_restart(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    first = await start_app(fresh_dsn)
    alice, bob, room = await first.room_of_two()
    await first.http.close()
    # Hold the expiry follower's lease: no server may lift a mute while the test does.
    holder = await asyncpg.connect(fresh_dsn)
    try:
        follower_id = await _lease_of(holder)
        assert await holder.fetchval("SELECT pg_try_advisory_lock(7240002, $1)", follower_id)
        second = await start_app(fresh_dsn)
        muted = await mute(second, alice, room, bob, duration_ms=500)

        async def overdue() -> bool:
            now = await holder.fetchval("SELECT (extract(epoch FROM now()) * 1000)::bigint")
            return bool(now > muted["expires_ts"] + 1_000)

        await second.eventually(overdue)
        assert [m["user_id"] for m in await listed(second, alice, room)] == [bob.user_id]
        await second.http.close()
    finally:
        await holder.close()
    third = await start_app(fresh_dsn)

    async def lifted() -> bool:
        return await listed(third, alice, room) == []

    await third.eventually(lifted, EXPIRY_SECONDS)
    await third.send(bob, room)
    await assert_replay_identical(fresh_dsn)


# --- the record -----------------------------------------------------------------------


async def test_a_replay_rebuilds_the_mutes(start_app: AppFactory, fresh_dsn: str) -> None:
    hs = await start_app(fresh_dsn)
    alice, bob, room = await hs.room_of_two()
    carol = await hs.register()
    await hs.join(carol, room)
    await mute(hs, alice, room, bob, reason="one")
    await mute(hs, alice, room, carol, duration_ms=86_400_000)
    await hs.ok("DELETE", mutes_path(room, bob), user=alice)
    assert [m["user_id"] for m in await listed(hs, alice, room)] == [carol.user_id]
    await assert_replay_identical(fresh_dsn)


async def test_mutes_answer_as_the_document_says(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    path = V1 + "rooms/{room_id}/mutes/{user_id}"
    body = {"duration_ms": 60_000, "reason": "spam"}
    await _exchange(hs, alice, "PUT", path, body, room_id=room, user_id=bob.user_id)
    listing = await _exchange(hs, bob, "GET", V1 + "rooms/{room_id}/mutes", room_id=room)
    assert [m["user_id"] for m in listing["mutes"]] == [bob.user_id]
    await _exchange(hs, alice, "DELETE", path, room_id=room, user_id=bob.user_id)


def test_the_mute_schema_agrees_with_the_model() -> None:
    schema = json.loads((SPEC_EVENTS / "com.linkchat.mute.json").read_text())
    good = [
        {"level": -1, "previous_level": 0},
        {"level": 9, "previous_level": 30, "expires_ts": 1, "reason": "x"},
    ]
    bad = [
        {"level": -1},
        {"level": "-1", "previous_level": 0},
        {"level": -1, "previous_level": 0, "expires_ts": -1},
        {"level": -1, "previous_level": 0, "reason": "x" * 1001},
    ]
    for content in good:
        jsonschema.validate(content, schema)
        MuteContent.model_validate(content)
    jsonschema.validate({}, schema)  # a lifted mute
    for content in bad:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(content, schema)
        with pytest.raises(ValueError):
            MuteContent.model_validate(content)
