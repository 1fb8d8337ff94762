"""Room versions 1 to 12 over HTTP: each with its event format, redaction algorithm and
authorization rules (events/room_versions.py), and the log of every version audited."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest

from homeserver.api.app_keys import SIGNING_KEYS
from homeserver.audit.export import export_log, verify_export
from homeserver.audit.purge import purge_redacted
from tests.audit_log import assert_replay_identical, server_verifier, verify
from tests.conftest import AppFactory
from tests.matrix import MatrixClient, User

VERSIONS = [str(v) for v in range(1, 13)]
LOCAL_ID = re.compile(r"\$[A-Za-z0-9]+:localhost")
BASE64_ID = re.compile(r"\$[A-Za-z0-9+/]{43}")
URLSAFE_ID = re.compile(r"\$[A-Za-z0-9_-]{43}")
HASH_ROOM_ID = re.compile(r"![A-Za-z0-9_-]{43}")


async def _state_event(hs: MatrixClient, user: User, room: str, event_type: str) -> Any:
    return await hs.ok("GET", f"rooms/{room}/state/{event_type}/?format=event", user=user)


async def _event(hs: MatrixClient, user: User, room: str, event_id: str) -> Any:
    # Room version 3's event IDs may hold '/' and '+': clients escape them in paths.
    return await hs.ok("GET", f"rooms/{room}/event/{quote(event_id, safe='')}", user=user)


async def _redact(hs: MatrixClient, user: User, room: str, event_id: str) -> str:
    path = f"rooms/{room}/redact/{quote(event_id, safe='')}/r{time.monotonic_ns()}"
    return str((await hs.ok("PUT", path, {"reason": "tidy"}, user=user))["event_id"])


async def _export(hs: MatrixClient, dsn: str, path: Path) -> Path:
    ring = hs.app[SIGNING_KEYS].ring
    conn = await asyncpg.connect(dsn)
    try:
        with path.open("w") as out:
            await export_log(conn, out, ring.server_name, ring.keys, None, 1_700_000_000_000)
    finally:
        await conn.close()
    return path


async def test_capabilities_list_every_stable_version_and_the_default(hs: MatrixClient) -> None:
    alice = await hs.register()
    versions = (await hs.ok("GET", "capabilities", user=alice))["capabilities"]["m.room_versions"]
    assert versions == {"default": "11", "available": {v: "stable" for v in VERSIONS}}
    room = await hs.create_room(alice)
    create = await _state_event(hs, alice, room, "m.room.create")
    assert create["content"]["room_version"] == "11"


async def test_the_default_room_version_is_configurable(start_app: AppFactory) -> None:
    hs = await start_app(rooms={"default_room_version": "12"})
    alice = await hs.register()
    versions = (await hs.ok("GET", "capabilities", user=alice))["capabilities"]["m.room_versions"]
    assert versions["default"] == "12"
    room = await hs.create_room(alice)
    assert HASH_ROOM_ID.fullmatch(room)


@pytest.mark.parametrize("version", VERSIONS)
async def test_each_version_has_its_own_event_format(hs: MatrixClient, version: str) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice, room_version=version, preset="public_chat")
    create = await _state_event(hs, alice, room, "m.room.create")
    assert create["content"]["room_version"] == version
    # The creator is named in the create event before version 11, its sender after.
    assert ("creator" in create["content"]) == (int(version) <= 10)
    message = await hs.send(alice, room, {"msgtype": "m.text", "body": "hello"})
    if version in ("1", "2"):
        expected = LOCAL_ID
    elif version == "3":
        expected = BASE64_ID
    else:
        expected = URLSAFE_ID
    for event_id in (create["event_id"], message):
        assert expected.fullmatch(event_id), event_id
    if version == "12":
        # The room's ID is its create event's reference hash.
        assert HASH_ROOM_ID.fullmatch(room)
        assert room[1:] == create["event_id"][1:]
    else:
        assert room.endswith(":localhost")
    redaction = await _event(hs, alice, room, await _redact(hs, alice, room, message))
    # Clients of every version read `redacts` at the top level; from 11 it is in the content.
    assert redaction["redacts"] == message
    assert ("redacts" in redaction["content"]) == (int(version) >= 11)
    assert redaction["content"]["reason"] == "tidy"
    assert (await _event(hs, alice, room, message))["content"] == {}
    # The room works as any other: sync shows it, and a second user can join.
    bob = await hs.register()
    await hs.join(bob, room)
    joined = (await hs.ok("GET", f"rooms/{room}/joined_members", user=bob))["joined"]
    assert set(joined) == {alice.user_id, bob.user_id}
    assert room in (await hs.sync(alice))["rooms"]["join"]


@pytest.mark.parametrize("version", ["1", "10", "11", "12"])
async def test_redaction_keeps_what_the_version_says(hs: MatrixClient, version: str) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice, room_version=version)
    levels = await _state_event(hs, alice, room, "m.room.power_levels")
    await _redact(hs, alice, room, levels["event_id"])
    served = await hs.ok("GET", f"rooms/{room}/state/m.room.power_levels/", user=alice)
    assert {"ban", "kick", "users", "events", "state_default"} <= set(served)
    assert "notifications" not in served and "historical" not in served
    # Version 11 keeps `invite` too.
    assert ("invite" in served) == (int(version) >= 11)


@pytest.mark.parametrize(("version", "knocks"), [("6", False), ("7", True)])
async def test_knocking_needs_version_7(hs: MatrixClient, version: str, knocks: bool) -> None:
    alice = await hs.register()
    room = await hs.create_room(
        alice,
        room_version=version,
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )
    bob = await hs.register()
    reply = await hs.request(
        "PUT",
        f"rooms/{room}/state/m.room.member/{bob.user_id}",
        {"membership": "knock"},
        user=bob,
    )
    assert (reply.status == 200) == knocks, reply.body


async def test_power_levels_may_be_strings_before_version_10(hs: MatrixClient) -> None:
    alice = await hs.register()
    path = "state/m.room.power_levels/"
    for version, status in (("9", 200), ("10", 403)):
        room = await hs.create_room(alice, room_version=version)
        levels = await hs.ok("GET", f"rooms/{room}/{path}", user=alice)
        reply = await hs.request(
            "PUT", f"rooms/{room}/{path}", {**levels, "kick": "60"}, user=alice
        )
        assert reply.status == status, (version, reply.body)


async def test_version_12_creators_have_unlimited_power(hs: MatrixClient) -> None:
    alice, bob, carol = await hs.register(), await hs.register(), await hs.register()
    room = await hs.create_room(
        alice, room_version="12", preset="trusted_private_chat", invite=[bob.user_id]
    )
    create = await _state_event(hs, alice, room, "m.room.create")
    # As Synapse: the invitees of a trusted private chat are creators too.
    assert create["content"]["additional_creators"] == [bob.user_id]
    levels = await hs.ok("GET", f"rooms/{room}/state/m.room.power_levels/", user=alice)
    assert alice.user_id not in levels["users"] and bob.user_id not in levels["users"]
    assert levels["events"]["m.room.tombstone"] == 150
    await hs.join(bob, room)
    await hs.ok("POST", f"rooms/{room}/invite", {"user_id": carol.user_id}, user=alice)
    await hs.join(carol, room)
    # A creator may not be named in the power levels, and no level reaches theirs.
    named = await hs.request(
        "PUT",
        f"rooms/{room}/state/m.room.power_levels/",
        {**levels, "users": {**levels["users"], bob.user_id: 100}},
        user=alice,
    )
    assert (named.status, named.errcode) == (403, "M_FORBIDDEN")
    await hs.ok(
        "PUT",
        f"rooms/{room}/state/m.room.power_levels/",
        {**levels, "users": {carol.user_id: 9000}},
        user=alice,
    )
    kick = await hs.request("POST", f"rooms/{room}/kick", {"user_id": bob.user_id}, user=carol)
    assert (kick.status, kick.errcode) == (403, "M_FORBIDDEN")
    await hs.ok("POST", f"rooms/{room}/kick", {"user_id": carol.user_id}, user=bob)


async def test_a_room_upgrades_to_and_from_version_12(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    old = await hs.create_room(alice, room_version="9", preset="public_chat", name="Club")
    await hs.join(bob, old)
    reply = await hs.ok(
        "POST",
        f"rooms/{old}/upgrade",
        {"new_version": "12", "additional_creators": [bob.user_id]},
        user=alice,
    )
    new = reply["replacement_room"]
    assert HASH_ROOM_ID.fullmatch(new)
    create = await _state_event(hs, alice, new, "m.room.create")
    assert create["content"]["predecessor"] == {"room_id": old}
    assert create["content"]["additional_creators"] == [bob.user_id]
    levels = await hs.ok("GET", f"rooms/{new}/state/m.room.power_levels/", user=alice)
    assert alice.user_id not in levels["users"]
    assert (await hs.ok("GET", f"rooms/{new}/state/m.room.name/", user=alice)) == {"name": "Club"}
    tombstone = await _state_event(hs, alice, old, "m.room.tombstone")
    assert tombstone["content"]["replacement_room"] == new
    # And back to a version whose creators are named in the power levels.
    back = await hs.ok("POST", f"rooms/{new}/upgrade", {"new_version": "10"}, user=alice)
    again = back["replacement_room"]
    create = await _state_event(hs, alice, again, "m.room.create")
    assert create["content"]["creator"] == alice.user_id
    levels = await hs.ok("GET", f"rooms/{again}/state/m.room.power_levels/", user=alice)
    assert levels["users"][alice.user_id] == 100


async def test_unknown_room_versions_are_refused(hs: MatrixClient) -> None:
    alice = await hs.register()
    for version in ("13", "0", "11.1", ""):
        reply = await hs.request("POST", "createRoom", {"room_version": version}, user=alice)
        assert (reply.status, reply.errcode) == (400, "M_UNSUPPORTED_ROOM_VERSION"), version


async def test_the_log_of_every_version_verifies_purges_and_replays(
    start_app: AppFactory, fresh_dsn: str, tmp_path: Path
) -> None:
    hs = await start_app(dsn=fresh_dsn)
    alice = await hs.register()
    for version in VERSIONS:
        room = await hs.create_room(alice, room_version=version, name=f"v{version}")
        message = await hs.send(alice, room, {"msgtype": "m.text", "body": "to purge"})
        await _redact(hs, alice, room, message)
        levels = await _state_event(hs, alice, room, "m.room.power_levels")
        await _redact(hs, alice, room, levels["event_id"])
    assert await verify(fresh_dsn, server_verifier(hs)) is None
    await asyncio.sleep(0.005)
    conn = await asyncpg.connect(fresh_dsn)
    try:
        purged = await purge_redacted(conn, int(time.time() * 1000))
    finally:
        await conn.close()
    assert purged.events == 2 * len(VERSIONS)
    verifier = server_verifier(hs)
    assert await verify(fresh_dsn, verifier) is None
    assert verifier.purged == 2 * len(VERSIONS)
    await assert_replay_identical(fresh_dsn)
    path = await _export(hs, fresh_dsn, tmp_path / "log.jsonl")
    assert (await verify_export(path, workers=0)).failure is None


async def test_an_event_checked_under_another_version_is_caught(
    start_app: AppFactory, fresh_dsn: str, tmp_path: Path
) -> None:
    hs = await start_app(dsn=fresh_dsn)
    alice = await hs.register()
    await hs.create_room(alice, room_version="4")
    path = await _export(hs, fresh_dsn, tmp_path / "log.jsonl")
    lines = path.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if '"m.room.member"' in line and '"4"' in line)
    lines[at] = lines[at].replace('"room_version":"4"', '"room_version":"5"')
    path.write_text("\n".join(lines) + "\n")
    outcome = await verify_export(path, workers=0)
    assert outcome.failure is not None and outcome.failure.check == "room version"


@pytest.mark.window_sources
@pytest.mark.parametrize("version", ["10", "11"])
async def test_sync_serves_an_event_redacted_in_its_window_by_its_rooms_version(
    start_app: AppFactory, window_source: str, version: str
) -> None:
    hs = await start_app()
    alice = await hs.register()
    room = await hs.create_room(alice, room_version=version)
    since = (await hs.sync(alice))["next_batch"]
    path = f"rooms/{room}/state/m.room.power_levels/"
    levels = await hs.ok("GET", path, user=alice)
    changed = (await hs.ok("PUT", path, {**levels, "kick": 51}, user=alice))["event_id"]
    await _redact(hs, alice, room, changed)
    timeline = (await hs.sync(alice, since=since))["rooms"]["join"][room]["timeline"]
    served = next(e for e in timeline["events"] if e["event_id"] == changed)
    assert served["content"]["kick"] == 51
    assert ("invite" in served["content"]) == (version == "11")
    assert "notifications" not in served["content"]
