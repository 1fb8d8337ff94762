"""Reporting content (POST /rooms/{roomId}/report/{eventId}, /rooms/{roomId}/report,
/users/{userId}/report): a user reports only what they can see, anything else is
404 as if it did not exist, and a report is a fact of the moderation chain that no
client endpoint serves."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import jsonschema
import pytest

from homeserver.config import RateLimit
from homeserver.events.content.reports import MODELS
from tests.audit_log import assert_replay_identical
from tests.conftest import AppFactory
from tests.matrix import MatrixClient, Reply
from tests.test_event_schemas import SPEC_EVENTS
from tests.test_rate_limits import NO_REFILL, assert_limited, only

MODERATION_CHAIN = "~moderation:localhost"


def event_report(room: str, event_id: str) -> str:
    return f"rooms/{room}/report/{event_id}"


def report_paths(room: str, event_id: str, user: str) -> list[str]:
    """The three report endpoints: the event's, its room's, the user's."""
    return [event_report(room, event_id), f"rooms/{room}/report", f"users/{user}/report"]


async def report_rows(dsn: str, table: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        return [dict(row) for row in await conn.fetch(f"SELECT * FROM {table} ORDER BY id")]
    finally:
        await conn.close()


def assert_not_found(reply: Reply) -> None:
    assert reply.status == 404, reply
    assert reply.errcode == "M_NOT_FOUND"


# --- event reports ---------------------------------------------------------------


async def test_a_member_reports_an_event_and_the_report_is_recorded(
    hs: MatrixClient, run_dsn: str
) -> None:
    alice, bob, room = await hs.room_of_two()
    offending = await hs.send(bob, room, {"msgtype": "m.text", "body": "spam spam"})
    body = {"reason": "this makes me sad", "score": -100}
    assert await hs.ok("POST", event_report(room, offending), body, user=alice) == {}

    rows = [r for r in await report_rows(run_dsn, "event_reports") if r["event_id"] == offending]
    assert len(rows) == 1
    row = rows[0]
    assert (row["room_id"], row["user_id"], row["reason"], row["score"]) == (
        room,
        alice.user_id,
        "this makes me sad",
        -100,
    )
    assert row["received_ts"] > 0


async def test_reason_and_score_are_optional(hs: MatrixClient, run_dsn: str) -> None:
    alice, bob, room = await hs.room_of_two()
    offending = await hs.send(bob, room)
    await hs.ok("POST", event_report(room, offending), {}, user=alice)
    rows = [r for r in await report_rows(run_dsn, "event_reports") if r["event_id"] == offending]
    assert [(r["reason"], r["score"]) for r in rows] == [(None, None)]


async def test_nobody_is_shown_a_report_in_their_sync(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    offending = await hs.send(bob, room)
    before = {user.user_id: (await hs.sync(user))["next_batch"] for user in (alice, bob)}
    await hs.ok("POST", event_report(room, offending), {"reason": "rude"}, user=alice)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "after"})
    for user in (alice, bob):
        text = json.dumps(await hs.sync(user, since=before[user.user_id]))
        assert "after" in text
        assert "com.linkchat.report" not in text and "rude" not in text
        assert MODERATION_CHAIN not in json.dumps(await hs.sync(user))


async def test_an_event_one_cannot_see_cannot_be_reported(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    stranger = await hs.register()
    event_id = await hs.send(bob, room)
    private = await hs.create_room(alice)
    private_event = await hs.send(alice, private)
    # A room they are not in, an event of another room, one that never existed.
    assert_not_found(
        await hs.request("POST", event_report(private, private_event), {}, user=stranger)
    )
    assert_not_found(await hs.request("POST", event_report(room, event_id), {}, user=stranger))
    assert_not_found(await hs.request("POST", event_report(room, private_event), {}, user=alice))
    assert_not_found(await hs.request("POST", event_report(room, "$nope"), {}, user=alice))


async def test_history_before_joining_a_joined_only_room_cannot_be_reported(
    hs: MatrixClient,
) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(
        alice,
        preset="public_chat",
        initial_state=[
            {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}
        ],
    )
    earlier = await hs.send(alice, room)
    await hs.join(bob, room)
    later = await hs.send(alice, room)
    assert_not_found(await hs.request("POST", event_report(room, earlier), {}, user=bob))
    await hs.ok("POST", event_report(room, later), {}, user=bob)


async def test_one_who_left_still_reports_what_they_saw(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    seen = await hs.send(alice, room)
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=bob)
    unseen = await hs.send(alice, room)
    await hs.ok("POST", event_report(room, seen), {"reason": "abuse"}, user=bob)
    assert_not_found(await hs.request("POST", event_report(room, unseen), {}, user=bob))


async def test_a_redacted_event_cannot_be_reported(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    event_id = await hs.send(bob, room)
    await hs.ok("PUT", f"rooms/{room}/redact/{event_id}/r1", {}, user=bob)
    assert_not_found(await hs.request("POST", event_report(room, event_id), {}, user=alice))


async def test_an_ignored_senders_event_can_still_be_reported(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    event_id = await hs.send(bob, room)
    await hs.ok(
        "PUT",
        f"user/{alice.user_id}/account_data/m.ignored_user_list",
        {"ignored_users": {bob.user_id: {}}},
        user=alice,
    )
    await hs.ok("POST", event_report(room, event_id), {"reason": "harassment"}, user=alice)


@pytest.mark.parametrize(
    ("body", "status", "errcode"),
    [
        ({"score": -101}, 400, "M_INVALID_PARAM"),
        ({"score": 1}, 400, "M_INVALID_PARAM"),
        ({"score": "-100"}, 400, "M_BAD_JSON"),
        ({"score": -5.5}, 400, "M_BAD_JSON"),
        ({"score": True}, 400, "M_BAD_JSON"),
        ({"reason": 7}, 400, "M_BAD_JSON"),
        ({"reason": "x" * 1001}, 400, "M_BAD_JSON"),
        ([], 400, "M_BAD_JSON"),
    ],
)
async def test_a_malformed_event_report_is_refused(
    hs: MatrixClient, body: Any, status: int, errcode: str
) -> None:
    alice, bob, room = await hs.room_of_two()
    event_id = await hs.send(bob, room)
    reply = await hs.request("POST", event_report(room, event_id), body, user=alice)
    assert (reply.status, reply.errcode) == (status, errcode), reply


async def test_a_report_without_a_body_is_not_json(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    event_id = await hs.send(bob, room)
    for path in report_paths(room, event_id, bob.user_id):
        reply = await hs.request("POST", path, raw=b"", user=alice)
        assert (reply.status, reply.errcode) == (400, "M_NOT_JSON"), (path, reply)


# --- room reports ----------------------------------------------------------------


async def test_members_invitees_and_anyone_for_a_public_room_may_report_it(
    hs: MatrixClient, run_dsn: str
) -> None:
    alice, bob, public = await hs.room_of_two()
    stranger, invitee = await hs.register(), await hs.register()
    private = await hs.create_room(alice, invite=[invitee.user_id])
    await hs.ok("POST", f"rooms/{public}/report", {"reason": "a spam room"}, user=bob)
    await hs.ok("POST", f"rooms/{public}/report", {"reason": "seen it"}, user=stranger)
    await hs.ok("POST", f"rooms/{private}/report", {"reason": "spam invite"}, user=invitee)
    await hs.ok("POST", f"rooms/{private}/report", {}, user=alice)
    rows = {
        (r["room_id"], r["user_id"], r["reason"])
        for r in await report_rows(run_dsn, "room_reports")
        if r["room_id"] in (public, private)
    }
    assert rows == {
        (public, bob.user_id, "a spam room"),
        (public, stranger.user_id, "seen it"),
        (private, invitee.user_id, "spam invite"),
        (private, alice.user_id, None),
    }


async def test_a_private_room_one_was_never_in_is_not_found_like_no_room(
    hs: MatrixClient,
) -> None:
    alice, stranger = await hs.register(), await hs.register()
    private = await hs.create_room(alice)
    hidden = await hs.request("POST", f"rooms/{private}/report", {}, user=stranger)
    missing = await hs.request("POST", "rooms/!nowhere:localhost/report", {}, user=stranger)
    assert_not_found(hidden)
    assert_not_found(missing)
    assert hidden.body == missing.body
    reply = await hs.request("POST", "rooms/not-a-room/report", {}, user=stranger)
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")


# --- user reports ----------------------------------------------------------------


async def test_a_user_of_this_server_may_be_reported(hs: MatrixClient, run_dsn: str) -> None:
    alice, bob = await hs.register(), await hs.register()
    await hs.ok("POST", f"users/{bob.user_id}/report", {"reason": "impersonation"}, user=alice)
    rows = [
        (r["user_id"], r["reason"])
        for r in await report_rows(run_dsn, "user_reports")
        if r["target_user_id"] == bob.user_id
    ]
    assert rows == [(alice.user_id, "impersonation")]


async def test_an_unknown_or_remote_user_is_not_found(hs: MatrixClient) -> None:
    alice = await hs.register()
    for target in ("@ghost_nobody:localhost", "@someone:elsewhere.example"):
        assert_not_found(await hs.request("POST", f"users/{target}/report", {}, user=alice))
    reply = await hs.request("POST", "users/not-a-user/report", {}, user=alice)
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")


# --- everyone ----------------------------------------------------------------------


async def test_reports_need_an_access_token(hs: MatrixClient) -> None:
    _, bob, room = await hs.room_of_two()
    event_id = await hs.send(bob, room)
    for path in report_paths(room, event_id, bob.user_id):
        reply = await hs.request("POST", path, {"reason": "x"})
        assert (reply.status, reply.errcode) == (401, "M_MISSING_TOKEN"), path
        reply = await hs.request("POST", path, {"reason": "x"}, token="not-a-token")
        assert (reply.status, reply.errcode) == (401, "M_UNKNOWN_TOKEN"), path


async def test_room_and_user_reports_are_not_served_under_r0(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    event_id = await hs.send(bob, room)
    r0 = "/_matrix/client/r0/"
    await hs.ok("POST", f"{r0}{event_report(room, event_id)}", {}, user=alice)
    for path in (f"rooms/{room}/report", f"users/{bob.user_id}/report"):
        reply = await hs.request("POST", r0 + path, {}, user=alice)
        assert (reply.status, reply.errcode) == (404, "M_UNRECOGNIZED"), path


async def test_reports_are_rate_limited_per_reporter(start_app: AppFactory) -> None:
    hs = await start_app(rate_limits=only(report=RateLimit(per_second=NO_REFILL, burst=3)))
    alice, bob, room = await hs.room_of_two()
    event_id = await hs.send(bob, room)
    paths = report_paths(room, event_id, bob.user_id)
    for path in paths:
        await hs.ok("POST", path, {"reason": "spam"}, user=alice)
    for path in paths:
        assert_limited(await hs.request("POST", path, {"reason": "spam"}, user=alice))
    # Another reporter has a bucket of their own.
    await hs.ok("POST", paths[0], {"reason": "spam"}, user=bob)


async def test_a_replay_rebuilds_every_report(start_app: AppFactory, fresh_dsn: str) -> None:
    hs = await start_app(fresh_dsn)
    alice, bob, room = await hs.room_of_two()
    event_id = await hs.send(bob, room)
    await hs.ok("POST", event_report(room, event_id), {"reason": "a", "score": -3}, user=alice)
    await hs.ok("POST", f"rooms/{room}/report", {"reason": "b"}, user=alice)
    await hs.ok("POST", f"users/{bob.user_id}/report", {"reason": "c"}, user=alice)
    for table in ("event_reports", "room_reports", "user_reports"):
        assert len(await report_rows(fresh_dsn, table)) == 1, table
    await assert_replay_identical(fresh_dsn)


def test_the_report_schemas_agree_with_the_models() -> None:
    good: dict[str, list[dict[str, Any]]] = {
        "com.linkchat.report.event": [
            {"room_id": "!r:hs", "event_id": "$e"},
            {"room_id": "!r:hs", "event_id": "$e", "reason": "x", "score": -100},
        ],
        "com.linkchat.report.room": [{"room_id": "!r:hs"}, {"room_id": "!r:hs", "reason": ""}],
        "com.linkchat.report.user": [{"user_id": "@u:hs", "reason": "x" * 1000}],
        "com.linkchat.report.deleted": [{"report_id": 7, "kind": "room"}],
    }
    bad: dict[str, list[dict[str, Any]]] = {
        "com.linkchat.report.event": [
            {"room_id": "!r:hs"},
            {"room_id": "!r:hs", "event_id": "$e", "score": 1},
            {"room_id": "!r:hs", "event_id": "$e", "score": "-1"},
        ],
        "com.linkchat.report.room": [{}, {"room_id": "!r:hs", "reason": "x" * 1001}],
        "com.linkchat.report.user": [{"user_id": 5}],
        "com.linkchat.report.deleted": [{"report_id": 0, "kind": "event"}, {"report_id": 3}],
    }
    assert set(good) == set(MODELS)
    for event_type, contents in good.items():
        schema = json.loads((SPEC_EVENTS / f"{event_type}.json").read_text())
        for content in contents:
            jsonschema.validate(content, schema)
            MODELS[event_type].model_validate(content)
        for content in bad[event_type]:
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate(content, schema)
            with pytest.raises(ValueError):
                MODELS[event_type].model_validate(content)
