"""Device commands, results and their expiry: every rule, the projection, sync and replay."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import jsonschema
import pytest
from pydantic import ValidationError

from homeserver.api.app_keys import APPENDER
from homeserver.device_control import rules
from homeserver.device_control.content import MODELS
from homeserver.device_control.expiry import expiry_draft
from homeserver.device_control.facts import CommandFacts, CommandState
from homeserver.errors import MatrixError
from homeserver.events.model import Draft, Event
from homeserver.projections.room_state import RoomState, StateEntry
from tests.audit_log import assert_replay_identical
from tests.conftest import AppFactory
from tests.devices import (
    COMMAND,
    EXPIRED,
    RESULT,
    V1,
    Paired,
    check_shape,
    command,
    commands,
    create_device,
    device_login,
    device_path,
    paired_device,
    publish_capabilities,
    result_content,
    send_command,
    send_event,
    send_result,
    timeline,
)
from tests.matrix import MatrixClient, User

SPEC = Path(__file__).resolve().parent.parent / "spec" / "events"


async def _wait_for_status(
    hs: MatrixClient, user: User, device: str, command_id: str, status: str
) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        found = {c["command_id"]: c for c in await commands(hs, user, device)}
        if found[command_id]["status"] == status:
            return found[command_id]
        assert time.monotonic() < deadline, found[command_id]
        await asyncio.sleep(0.05)


async def _granted_friend(hs: MatrixClient, paired: Paired) -> User:
    friend = await hs.register()
    grants = device_path(paired.device.user_id, "/grants")
    await hs.ok("POST", grants, {"user_id": friend.user_id}, user=paired.owner)
    await hs.join(friend, paired.room_id)
    return friend


# Commands


async def test_owner_command_is_accepted_and_listed_as_pending(hs: MatrixClient) -> None:
    paired = await paired_device(hs)
    command_id = await command(hs, paired, args={"url": "https://example.com/a"}, ttl_ms=30_000)
    [listed] = await commands(hs, paired.owner, paired.device.user_id)
    assert listed["command_id"] == command_id
    assert listed["sender"] == paired.owner.user_id
    assert (listed["action"], listed["args"]) == ("open_url", {"url": "https://example.com/a"})
    assert listed["status"] == "pending" and listed["results"] == []
    assert listed["expires_ts"] == listed["sent_ts"] + 30_000


async def test_commands_need_the_command_level(hs: MatrixClient) -> None:
    paired = await paired_device(hs)
    stranger = await hs.register()
    reply = await send_command(hs, stranger, paired.room_id)
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    # Invited the plain Matrix way, without a grant: in the room at level 0.
    guest = await hs.register()
    await hs.ok(
        "POST", f"rooms/{paired.room_id}/invite", {"user_id": guest.user_id}, user=paired.owner
    )
    await hs.join(guest, paired.room_id)
    reply = await send_command(hs, guest, paired.room_id)
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    assert "power level 50" in reply.body["error"]


async def test_the_device_never_commands_itself_even_at_the_command_level(
    hs: MatrixClient,
) -> None:
    paired = await paired_device(hs)
    reply = await send_command(hs, paired.device, paired.room_id)
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    levels_path = f"rooms/{paired.room_id}/state/m.room.power_levels"
    levels = await hs.ok("GET", levels_path, user=paired.owner)
    levels["users"][paired.device.user_id] = 50
    await hs.ok("PUT", levels_path, levels, user=paired.owner)
    reply = await send_command(hs, paired.device, paired.room_id)
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    assert "does not send commands" in reply.body["error"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ({"action": "open_url", "args": {"url": "http://x"}, "ttl_ms": 1000}, "content.args.url"),
        ({"action": "open_url", "args": {}, "ttl_ms": 1000}, "'url' is a required property"),
        (
            {"action": "open_url", "args": {"url": "https://x", "more": 1}, "ttl_ms": 1000},
            "Additional properties",
        ),
        ({"action": "reboot", "args": {}, "ttl_ms": 1000}, "does not accept 'reboot'"),
        ({"action": "beep", "args": {}}, "content.ttl_ms"),
        ({"action": "beep", "args": {}, "ttl_ms": 0}, "content.ttl_ms"),
        ({"action": "beep", "args": {}, "ttl_ms": 8 * 24 * 3600 * 1000}, "content.ttl_ms"),
        ({"action": "beep", "args": {}, "ttl_ms": "1000"}, "content.ttl_ms"),
        ({"action": 5, "args": {}, "ttl_ms": 1000}, "content.action"),
        ({"action": "beep", "args": [1], "ttl_ms": 1000}, "content.args"),
    ],
)
async def test_a_command_the_device_cannot_run_is_refused_naming_the_problem(
    hs: MatrixClient, content: dict[str, Any], problem: str
) -> None:
    paired = await paired_device(hs)
    reply = await send_event(hs, paired.owner, paired.room_id, COMMAND, content)
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON"), reply.body
    assert problem in reply.body["error"]


async def test_a_command_before_the_device_published_capabilities_is_refused(
    hs: MatrixClient,
) -> None:
    owner = await hs.register()
    created = await create_device(hs, owner)
    await device_login(hs, created["login_token"])
    reply = await send_command(hs, owner, created["room_id"])
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")
    assert "capabilities" in reply.body["error"]


async def test_a_command_is_not_state(hs: MatrixClient) -> None:
    paired = await paired_device(hs)
    reply = await hs.request(
        "PUT",
        f"rooms/{paired.room_id}/state/{COMMAND}",
        {"action": "beep", "args": {}, "ttl_ms": 1000},
        user=paired.owner,
    )
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")


async def test_new_capabilities_change_what_commands_are_accepted(hs: MatrixClient) -> None:
    paired = await paired_device(hs)
    await command(hs, paired, action="beep", args={})
    only_reboot = {"actions": {"reboot": {"args_schema": {"type": "object", "maxProperties": 0}}}}
    reply = await publish_capabilities(hs, paired.device, paired.room_id, only_reboot)
    assert reply.status == 200
    refused = await send_command(hs, paired.owner, paired.room_id, action="beep", args={})
    assert (refused.status, refused.errcode) == (400, "M_BAD_JSON")
    await command(hs, paired, action="reboot", args={})


# Results


async def test_device_reports_progress_until_a_terminal_status(hs: MatrixClient) -> None:
    paired = await paired_device(hs)
    command_id = await command(hs, paired)
    for status in ("accepted", "running"):
        reply = await send_result(hs, paired.device, paired.room_id, command_id, status)
        assert reply.status == 200, reply.body
    [listed] = await commands(hs, paired.owner, paired.device.user_id, "?status=running")
    assert listed["status"] == "running"
    reply = await send_result(
        hs, paired.device, paired.room_id, command_id, "succeeded", output={"title": "Example"}
    )
    assert reply.status == 200
    page = await hs.ok(
        "GET", device_path(paired.device.user_id, "/commands?status=done"), user=paired.owner
    )
    check_shape("commands_response", page)
    [listed] = page["commands"]
    assert listed["status"] == "succeeded"
    assert [r["status"] for r in listed["results"]] == ["accepted", "running", "succeeded"]
    assert listed["results"][-1]["output"] == {"title": "Example"}
    assert "output" not in listed["results"][0]

    after = await send_result(hs, paired.device, paired.room_id, command_id, "running")
    assert (after.status, after.errcode) == (409, "LINKCHAT_COMMAND_FINISHED")


async def test_failed_and_rejected_results_are_terminal_too(hs: MatrixClient) -> None:
    paired = await paired_device(hs)
    for status in ("failed", "rejected"):
        command_id = await command(hs, paired)
        reply = await send_result(
            hs, paired.device, paired.room_id, command_id, status, error="no browser"
        )
        assert reply.status == 200
        again = await send_result(hs, paired.device, paired.room_id, command_id, "succeeded")
        assert (again.status, again.errcode) == (409, "LINKCHAT_COMMAND_FINISHED")
    done = await commands(hs, paired.owner, paired.device.user_id, "?status=done")
    assert [c["status"] for c in done] == ["failed", "rejected"]
    assert done[0]["results"][0]["error"] == "no browser"


async def test_only_the_device_sends_results(hs: MatrixClient) -> None:
    paired = await paired_device(hs)
    friend = await _granted_friend(hs, paired)
    command_id = await command(hs, paired)
    for sender in (paired.owner, friend):
        reply = await send_result(hs, sender, paired.room_id, command_id, "succeeded")
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    [listed] = await commands(hs, paired.owner, paired.device.user_id)
    assert listed["status"] == "pending"


async def test_a_result_for_an_unknown_command_is_refused(hs: MatrixClient) -> None:
    paired = await paired_device(hs)
    other = await paired_device(hs, paired.owner)
    elsewhere = await command(hs, other)
    message = await hs.send(paired.owner, paired.room_id)
    for target in ("$no-such-event", message, elsewhere):
        reply = await send_result(hs, paired.device, paired.room_id, target, "succeeded")
        assert (reply.status, reply.errcode) == (404, "LINKCHAT_UNKNOWN_COMMAND"), target


@pytest.mark.parametrize(
    "content",
    [
        {"status": "succeeded"},
        result_content("$x", "done"),
        {"status": "succeeded", "m.relates_to": {"rel_type": "m.reference", "event_id": "$x"}},
        result_content("$x", "succeeded", error=5),
    ],
)
async def test_a_malformed_result_is_refused(hs: MatrixClient, content: dict[str, Any]) -> None:
    paired = await paired_device(hs)
    reply = await send_event(hs, paired.device, paired.room_id, RESULT, content)
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON"), reply.body


async def test_of_two_racing_final_results_exactly_one_is_accepted(hs: MatrixClient) -> None:
    paired = await paired_device(hs)
    command_id = await command(hs, paired)
    replies = await asyncio.gather(
        *(
            send_result(hs, paired.device, paired.room_id, command_id, status)
            for status in ("succeeded", "failed", "rejected", "succeeded")
        )
    )
    assert sorted(r.status for r in replies) == [200, 409, 409, 409]
    [listed] = await commands(hs, paired.owner, paired.device.user_id)
    assert len(listed["results"]) == 1
    assert listed["status"] == listed["results"][0]["status"]


async def test_a_group_refused_half_way_leaves_the_command_unanswered(hs: MatrixClient) -> None:
    paired = await paired_device(hs)
    command_id = await command(hs, paired)
    device = paired.device.user_id
    final = Draft(paired.room_id, device, RESULT, result_content(command_id, "succeeded"))
    refused = Draft(paired.room_id, device, COMMAND, {"action": "beep", "ttl_ms": 10})
    progress = Draft(paired.room_id, device, RESULT, result_content(command_id, "running"))
    appender = hs.app[APPENDER]
    # Queued together, so usually one batch: the group's result must not count.
    outcomes = await asyncio.gather(
        appender.append_group([final, refused]), appender.append(progress), return_exceptions=True
    )
    assert isinstance(outcomes[0], MatrixError) and outcomes[0].errcode == "M_FORBIDDEN"
    assert isinstance(outcomes[1], Event)
    [listed] = await commands(hs, paired.owner, device)
    assert listed["status"] == "running"


# Expiry


async def test_an_unanswered_command_expires_by_an_event_from_the_server(
    hs: MatrixClient,
) -> None:
    paired = await paired_device(hs)
    command_id = await command(hs, paired, ttl_ms=300)
    listed = await _wait_for_status(hs, paired.owner, paired.device.user_id, command_id, "expired")
    check_shape("command", listed)
    [expiry] = listed["results"]
    assert expiry["sender"] == "@_linkchat:localhost" and expiry["status"] == "expired"
    assert expiry["ts"] >= listed["expires_ts"]
    late = await send_result(hs, paired.device, paired.room_id, command_id, "succeeded")
    assert (late.status, late.errcode) == (410, "LINKCHAT_COMMAND_EXPIRED")
    expired = await commands(hs, paired.owner, paired.device.user_id, "?status=expired")
    assert [c["command_id"] for c in expired] == [command_id]
    assert await commands(hs, paired.owner, paired.device.user_id, "?status=pending") == []
    events = await hs.ok("GET", f"rooms/{paired.room_id}/messages?dir=b&limit=5", user=paired.owner)
    newest = events["chunk"][0]
    assert newest["type"] == EXPIRED and newest["sender"] == "@_linkchat:localhost"
    assert newest["content"]["m.relates_to"]["event_id"] == command_id


async def test_a_command_running_past_its_ttl_expires_too(hs: MatrixClient) -> None:
    paired = await paired_device(hs)
    command_id = await command(hs, paired, ttl_ms=400)
    await send_result(hs, paired.device, paired.room_id, command_id, "running")
    listed = await _wait_for_status(hs, paired.owner, paired.device.user_id, command_id, "expired")
    assert [r["status"] for r in listed["results"]] == ["running", "expired"]


async def test_a_command_finished_in_time_never_expires(hs: MatrixClient, run_dsn: str) -> None:
    paired = await paired_device(hs)
    command_id = await command(hs, paired, ttl_ms=200)
    await send_result(hs, paired.device, paired.room_id, command_id, "succeeded")
    await asyncio.sleep(0.6)
    [listed] = await commands(hs, paired.owner, paired.device.user_id)
    assert listed["status"] == "succeeded" and len(listed["results"]) == 1
    conn = await asyncpg.connect(run_dsn)
    try:
        count = await conn.fetchval(
            "SELECT count(*) FROM events WHERE room_id = $1 AND type = $2", paired.room_id, EXPIRED
        )
    finally:
        await conn.close()
    assert count == 0


async def test_nobody_but_the_server_marks_a_command_expired(hs: MatrixClient) -> None:
    paired = await paired_device(hs)
    command_id = await command(hs, paired, ttl_ms=60_000)
    content = {"m.relates_to": {"rel_type": "com.linkchat.result", "event_id": command_id}}
    for sender in (paired.owner, paired.device):
        reply = await send_event(hs, sender, paired.room_id, EXPIRED, content)
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")


async def test_the_server_does_not_expire_a_command_early(hs: MatrixClient) -> None:
    paired = await paired_device(hs)
    command_id = await command(hs, paired, ttl_ms=60_000)
    with pytest.raises(MatrixError) as refused:
        await hs.app[APPENDER].append(
            expiry_draft(paired.room_id, command_id, "@_linkchat:localhost")
        )
    assert refused.value.errcode == "LINKCHAT_COMMAND_NOT_EXPIRED"


async def test_two_processes_expiring_one_command_write_one_expiry(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    first = await start_app(dsn=fresh_dsn)
    second = await start_app(dsn=fresh_dsn)
    paired = await paired_device(first)
    command_id = await command(first, paired, ttl_ms=150)
    await asyncio.sleep(0.2)
    draft = expiry_draft(paired.room_id, command_id, "@_linkchat:localhost")
    outcomes = await asyncio.gather(
        first.app[APPENDER].append(draft),
        second.app[APPENDER].append(draft),
        return_exceptions=True,
    )
    assert sum(isinstance(o, Event) for o in outcomes) <= 1
    for outcome in outcomes:
        if isinstance(outcome, MatrixError):
            assert outcome.errcode in ("LINKCHAT_COMMAND_EXPIRED", "LINKCHAT_COMMAND_FINISHED")
    await _wait_for_status(first, paired.owner, paired.device.user_id, command_id, "expired")
    conn = await asyncpg.connect(fresh_dsn)
    try:
        count = await conn.fetchval("SELECT count(*) FROM events WHERE type = $1", EXPIRED)
    finally:
        await conn.close()
    assert count == 1


async def test_a_restarted_server_expires_commands_it_accepted_before(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    before = await start_app(dsn=fresh_dsn)
    paired = await paired_device(before)
    command_id = await command(before, paired, ttl_ms=400)
    await before.http.close()
    await asyncio.sleep(0.5)  # the command expires while no server runs
    after = await start_app(dsn=fresh_dsn)
    await _wait_for_status(after, paired.owner, paired.device.user_id, command_id, "expired")


# Rules, without a server: the ttl boundary is decided by the clock under the lock.


def _device_room_state() -> RoomState:
    from types import MappingProxyType

    create = {
        "type": "com.linkchat.device",
        "device_user_id": "@d:hs",
        "owner_user_id": "@o:hs",
    }
    entries = {
        ("m.room.create", ""): StateEntry("$c", "@o:hs", create),
        ("m.room.member", "@d:hs"): StateEntry("$m", "@d:hs", {"membership": "join"}),
    }
    return RoomState("!r:hs", None, MappingProxyType(entries))


def test_a_result_past_the_ttl_is_refused_before_the_expiry_is_written() -> None:
    state = _device_room_state()
    facts = CommandFacts(frozenset({"$cmd"}), {"$cmd": CommandState("!r:hs", 1_000, "pending")})
    result = Draft("!r:hs", "@d:hs", RESULT, result_content("$cmd", "succeeded"))
    rules.authorize(state, result, facts, now_ms=999)
    with pytest.raises(MatrixError) as late:
        rules.authorize(state, result, facts, now_ms=1_000)
    assert (late.value.status, late.value.errcode) == (410, "LINKCHAT_COMMAND_EXPIRED")
    expiry = expiry_draft("!r:hs", "$cmd", "@_linkchat:hs")
    with pytest.raises(MatrixError) as early:
        rules.authorize(state, expiry, facts, now_ms=999)
    assert early.value.errcode == "LINKCHAT_COMMAND_NOT_EXPIRED"
    rules.authorize(state, expiry, facts, now_ms=1_000)


def test_results_fold_into_the_batch_facts_so_the_next_draft_sees_them() -> None:
    facts = CommandFacts(frozenset({"$cmd"}), {"$cmd": CommandState("!r:hs", 1_000, "pending")})
    pdu = {
        "room_id": "!r:hs",
        "sender": "@d:hs",
        "type": RESULT,
        "content": result_content("$cmd", "succeeded"),
        "origin_server_ts": 10,
        "depth": 5,
        "prev_events": [],
    }
    after = facts.accepted(Event.from_pdu("$res", pdu, 7))
    assert after.commands["$cmd"].status == "succeeded"
    assert facts.commands["$cmd"].status == "pending"  # the earlier facts are unchanged


# The list


async def test_commands_list_filters_by_status_and_pages(hs: MatrixClient) -> None:
    paired = await paired_device(hs)
    ids = [await command(hs, paired) for _ in range(3)]
    await send_result(hs, paired.device, paired.room_id, ids[1], "accepted")
    await send_result(hs, paired.device, paired.room_id, ids[2], "succeeded")
    device = paired.device.user_id
    assert [c["command_id"] for c in await commands(hs, paired.owner, device)] == ids
    assert [
        c["command_id"] for c in await commands(hs, paired.owner, device, "?status=pending")
    ] == [ids[0]]
    running = await commands(hs, paired.owner, device, "?status=running")
    assert [c["command_id"] for c in running] == [ids[1]]
    first = await hs.ok("GET", device_path(device, "/commands?limit=2"), user=paired.owner)
    assert [c["command_id"] for c in first["commands"]] == ids[:2]
    rest = await hs.ok(
        "GET",
        device_path(device, f"/commands?limit=2&from={first['next_batch']}"),
        user=paired.owner,
    )
    assert [c["command_id"] for c in rest["commands"]] == ids[2:]
    assert "next_batch" not in rest
    for query in ("?status=later", "?limit=0", "?limit=x", "?from=-1"):
        reply = await hs.request("GET", device_path(device, "/commands" + query), user=paired.owner)
        assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM"), query
    unknown = await hs.request(
        "GET", device_path("@x.dev.y:localhost", "/commands"), user=paired.owner
    )
    assert (unknown.status, unknown.errcode) == (404, "M_NOT_FOUND")


async def test_the_commands_list_is_for_the_owner_the_device_and_granted_users(
    hs: MatrixClient,
) -> None:
    paired = await paired_device(hs)
    friend = await _granted_friend(hs, paired)
    stranger = await hs.register()
    await command(hs, paired)
    for reader in (paired.owner, paired.device, friend):
        assert len(await commands(hs, reader, paired.device.user_id)) == 1
    path = device_path(paired.device.user_id, "/commands")
    reply = await hs.request("GET", path, user=stranger)
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    grant = device_path(paired.device.user_id, f"/grants/{quote(friend.user_id)}")
    await hs.ok("DELETE", grant, user=paired.owner)
    reply = await hs.request("GET", path, user=friend)
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")


# Sync


async def test_a_device_long_polling_sync_is_woken_by_a_command(hs: MatrixClient) -> None:
    paired = await paired_device(hs)
    since = (await hs.sync(paired.device))["next_batch"]
    poll = asyncio.create_task(hs.sync(paired.device, since, wait_ms=10_000))
    await asyncio.sleep(0.1)
    command_id = await command(hs, paired)
    body = await asyncio.wait_for(poll, 5)
    [event] = [e for e in timeline(body, paired.room_id) if e["type"] == COMMAND]
    assert event["event_id"] == command_id and event["content"]["action"] == "open_url"


async def test_an_offline_device_gets_its_pending_commands_on_its_next_sync(
    hs: MatrixClient,
) -> None:
    paired = await paired_device(hs)
    since = (await hs.sync(paired.device))["next_batch"]
    # The device goes offline; meanwhile one command waits and one expires.
    waiting = await command(hs, paired, ttl_ms=60_000)
    expiring = await command(hs, paired, ttl_ms=200)
    await _wait_for_status(hs, paired.owner, paired.device.user_id, expiring, "expired")

    body = await hs.sync(paired.device, since)
    events = timeline(body, paired.room_id)
    assert [e["event_id"] for e in events if e["type"] == COMMAND] == [waiting, expiring]
    [expiry] = [e for e in events if e["type"] == EXPIRED]
    assert expiry["content"]["m.relates_to"]["event_id"] == expiring
    # What an agent starting up reads: only what it may still run.
    pending = await commands(hs, paired.device, paired.device.user_id, "?status=pending")
    assert [c["command_id"] for c in pending] == [waiting]


# Everyone tries everything


async def test_owner_friend_stranger_and_device_each_try_every_action(hs: MatrixClient) -> None:
    paired = await paired_device(hs)
    friend = await _granted_friend(hs, paired)
    stranger, someone = await hs.register(), await hs.register()
    device = paired.device.user_id
    actors = {
        "owner": paired.owner,
        "friend": friend,
        "stranger": stranger,
        "device": paired.device,
    }
    seen: dict[str, dict[str, int]] = {name: {} for name in actors}
    owner_command = await command(hs, paired)
    for name, actor in actors.items():
        create = await hs.request("POST", f"{V1}/devices", {"display_name": "x"}, user=actor)
        seen[name]["create device"] = create.status
        caps = await publish_capabilities(hs, actor, paired.room_id)
        seen[name]["publish capabilities"] = caps.status
        sent = await send_command(hs, actor, paired.room_id)
        seen[name]["command"] = sent.status
        target = owner_command
        result = await send_result(hs, actor, paired.room_id, target, "running")
        seen[name]["result"] = result.status
        grants = device_path(device, "/grants")
        grant = await hs.request("POST", grants, {"user_id": someone.user_id}, user=actor)
        seen[name]["grant"] = grant.status
        revoke = await hs.request("DELETE", f"{grants}/{quote(someone.user_id)}", user=actor)
        seen[name]["revoke"] = revoke.status
        listed = await hs.request("GET", device_path(device, "/commands"), user=actor)
        seen[name]["list commands"] = listed.status
    ok, no = 200, 403
    assert seen == {
        "owner": dict(zip(seen["owner"], [ok, no, ok, no, ok, ok, ok], strict=True)),
        "friend": dict(zip(seen["friend"], [ok, no, ok, no, no, no, ok], strict=True)),
        "stranger": dict(zip(seen["stranger"], [ok, no, no, no, no, no, no], strict=True)),
        "device": dict(zip(seen["device"], [no, ok, no, ok, no, no, ok], strict=True)),
    }


# Replay


async def _scenario(hs: MatrixClient) -> None:
    paired = await paired_device(hs)
    friend = await _granted_friend(hs, paired)
    done = await command(hs, paired)
    await send_result(hs, paired.device, paired.room_id, done, "accepted")
    await send_result(hs, paired.device, paired.room_id, done, "succeeded", output=[1, "two"])
    failed = await send_command(hs, friend, paired.room_id, action="beep", args={})
    await send_result(
        hs, paired.device, paired.room_id, failed.body["event_id"], "failed", error="muted"
    )
    expiring = await command(hs, paired, ttl_ms=150)
    await command(hs, paired, ttl_ms=60_000)
    await _wait_for_status(hs, paired.owner, paired.device.user_id, expiring, "expired")
    await hs.ok(
        "DELETE",
        device_path(paired.device.user_id, f"/grants/{quote(friend.user_id)}"),
        user=paired.owner,
    )
    other = await create_device(hs, paired.owner, "retired")
    await hs.ok("DELETE", device_path(other["device_user_id"]), user=paired.owner)


async def test_device_projections_equal_a_replay_of_the_log(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    hs = await start_app(dsn=fresh_dsn)
    await _scenario(hs)
    conn = await asyncpg.connect(fresh_dsn)
    try:
        for name in ("device_commands", "device_command_status", "device_command_results"):
            assert await conn.fetchval(f"SELECT count(*) FROM {name}") > 0
        assert await conn.fetchval("SELECT count(*) FROM linkchat_devices") == 1
    finally:
        await conn.close()
    await assert_replay_identical(fresh_dsn)


# The JSON Schemas of spec/ agree with the content models


_FIXTURES: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
    "com.linkchat.device.capabilities": (
        [
            {"actions": {}},
            {
                "actions": {
                    "beep": {"args_schema": {}},
                    "x": {"args_schema": {}, "description": "d"},
                }
            },
            {"actions": {"beep": {"args_schema": {"type": "object"}}}, "extra": 1},
        ],
        [{}, {"actions": []}, {"actions": {"beep": {}}}, {"actions": {"beep": {"args_schema": 1}}}],
    ),
    "com.linkchat.device.command": (
        [
            {"action": "open_url", "args": {"url": "https://x"}, "ttl_ms": 1},
            {"action": "beep", "ttl_ms": 604_800_000},
        ],
        [
            {"action": "beep"},
            {"action": "", "ttl_ms": 5},
            {"action": "b e", "ttl_ms": 5},
            {"action": "beep", "ttl_ms": 0},
            {"action": "beep", "ttl_ms": 604_800_001},
            {"action": "beep", "ttl_ms": 5, "args": []},
            {"action": "beep", "ttl_ms": True},
        ],
    ),
    "com.linkchat.device.result": (
        [
            result_content("$c", "accepted"),
            result_content("$c", "succeeded", output={"a": [1]}),
            result_content("$c", "failed", error="boom", output=None),
        ],
        [
            {"status": "succeeded"},
            result_content("$c", "expired"),
            result_content("c", "running"),
            result_content("$c", "failed", error=1),
            {"status": "running", "m.relates_to": {"rel_type": "m.thread", "event_id": "$c"}},
        ],
    ),
    "com.linkchat.device.command.expired": (
        [{"m.relates_to": {"rel_type": "com.linkchat.result", "event_id": "$c"}}],
        [{}, {"m.relates_to": {"event_id": "$c"}}],
    ),
}


@pytest.mark.parametrize("event_type", sorted(_FIXTURES))
def test_spec_json_schema_agrees_with_the_content_model(event_type: str) -> None:
    schema = json.loads((SPEC / f"{event_type}.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    model = MODELS[event_type]
    good, bad = _FIXTURES[event_type]
    for content in good:
        assert validator.is_valid(content), content
        model.model_validate(content)
    for content in bad:
        assert not validator.is_valid(content), content
        with pytest.raises(ValidationError):
            model.model_validate(content)
