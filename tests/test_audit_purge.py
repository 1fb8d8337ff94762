"""`admin purge-redacted`: redacted content gone from every table; the log still verifies."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from homeserver.audit.purge import purge_redacted
from homeserver.audit.verify import Failure, LogVerifier
from homeserver.events.canonical import decode, encode
from homeserver.events.redaction import redact_content
from homeserver.events.room_versions import KNOWN, LEGACY, room_version
from tests.audit_log import assert_replay_identical, server_verifier, verify
from tests.conftest import AppFactory
from tests.matrix import MatrixClient, User
from tests.processes import run_homeserver

SECRET = "zebrapassword"  # one word, so the search index would keep it as written


async def _secrets_in_database(dsn: str, needle: str = SECRET) -> list[str]:
    """Every table.column of the database holding `needle` in its text form."""
    conn = await asyncpg.connect(dsn)
    try:
        columns = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public'"
        )
        found = []
        for row in columns:
            table, column = row["table_name"], row["column_name"]
            hits = await conn.fetchval(
                f'SELECT count(*) FROM public."{table}" WHERE "{column}"::text LIKE $1',
                f"%{needle}%",
            )
            if hits:
                found.append(f"{table}.{column}")
        return found
    finally:
        await conn.close()


async def _verify(hs: MatrixClient, dsn: str) -> tuple[Failure | None, LogVerifier]:
    verifier = server_verifier(hs)
    return await verify(dsn, verifier), verifier


async def _purge(dsn: str, older_than_ms: int = 0) -> int:
    await asyncio.sleep(0.005)  # redactions strictly before the cut-off
    conn = await asyncpg.connect(dsn)
    try:
        result = await purge_redacted(conn, int(time.time() * 1000) - older_than_ms)
    finally:
        await conn.close()
    return result.events


async def _secret_room(hs: MatrixClient) -> tuple[User, User, str, list[str]]:
    """A room where bob writes the secret into a message, an edit, a reaction, a topic and
    his display name; alice redacts them all. Returns the redacted event IDs."""
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    message = await hs.send(bob, room, {"msgtype": "m.text", "body": f"the {SECRET} is here"})
    edit = await hs.send(
        bob,
        room,
        {
            "msgtype": "m.text",
            "body": f"* the {SECRET} again",
            "m.new_content": {"msgtype": "m.text", "body": f"the {SECRET} again"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": message},
        },
    )
    reaction = await hs.send(
        bob,
        room,
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": message, "key": SECRET}},
        "m.reaction",
    )
    topic = await hs.ok(
        "PUT", f"rooms/{room}/state/m.room.topic", {"topic": f"about {SECRET}"}, user=alice
    )
    member = await hs.ok(
        "PUT",
        f"rooms/{room}/state/m.room.member/{bob.user_id}",
        {"membership": "join", "displayname": f"bob {SECRET}"},
        user=bob,
    )
    redacted = [message, edit, reaction, topic["event_id"], member["event_id"]]
    for n, event_id in enumerate(redacted):
        await hs.ok("PUT", f"rooms/{room}/redact/{event_id}/purge{n}", {}, user=alice)
    # Moving on: a new topic, a new name, a message that stays.
    await hs.ok("PUT", f"rooms/{room}/state/m.room.topic", {"topic": "nothing"}, user=alice)
    await hs.ok(
        "PUT",
        f"rooms/{room}/state/m.room.member/{bob.user_id}",
        {"membership": "join", "displayname": "bob"},
        user=bob,
    )
    await hs.send(bob, room, {"msgtype": "m.text", "body": "kept"})
    return alice, bob, room, redacted


async def test_purged_content_is_gone_from_every_table_and_the_log_still_verifies(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    hs = await start_app(dsn=fresh_dsn)
    alice, _, room, redacted = await _secret_room(hs)
    before = await _secrets_in_database(fresh_dsn)
    # The log, and a projection row made from content (a reaction's key).
    assert {"events.json", "event_relations.aggregation_key"} <= set(before)
    assert await _purge(fresh_dsn) == len(redacted)
    assert await _secrets_in_database(fresh_dsn) == []
    failure, verifier = await _verify(hs, fresh_dsn)
    assert failure is None, str(failure)
    assert verifier.purged == len(redacted)
    await assert_replay_identical(fresh_dsn)
    # Served as before: redacted, and the room still works.
    event = await hs.ok("GET", f"rooms/{room}/event/{redacted[0]}", user=alice)
    assert event["content"] == {}
    assert "kept" in json.dumps(await hs.ok("GET", f"rooms/{room}/messages?dir=b", user=alice))
    await hs.send(alice, room, {"msgtype": "m.text", "body": "after the purge"})
    assert await _purge(fresh_dsn) == 0  # nothing left to purge
    assert (await _verify(hs, fresh_dsn))[0] is None


async def test_only_redactions_older_than_the_cut_off_are_purged(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    hs = await start_app(dsn=fresh_dsn)
    await _secret_room(hs)
    assert await _purge(fresh_dsn, older_than_ms=3_600_000) == 0
    assert await _secrets_in_database(fresh_dsn) != []


async def _one_redacted(hs: MatrixClient) -> tuple[str, str, str]:
    alice = await hs.register()
    room = await hs.create_room(alice)
    kept = await hs.send(alice, room, {"msgtype": "m.text", "body": "kept"})
    gone = await hs.send(alice, room, {"msgtype": "m.text", "body": SECRET})
    await hs.ok("PUT", f"rooms/{room}/redact/{gone}/r", {}, user=alice)
    return room, kept, gone


async def _json_of(conn: asyncpg.Connection, event_id: str) -> dict[str, Any]:
    return decode(await conn.fetchval("SELECT json FROM events WHERE event_id = $1", event_id))


async def test_the_log_refuses_every_change_but_a_purge(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    hs = await start_app(dsn=fresh_dsn)
    _, kept, gone = await _one_redacted(hs)
    conn = await asyncpg.connect(fresh_dsn)
    try:
        update = "UPDATE events SET json = $1 WHERE event_id = $2"
        for event_id, content in (
            (kept, {}),  # never redacted: its content may not go
            (gone, {"body": "rewritten"}),  # redacted, but this is not its redacted form
        ):
            pdu = {**await _json_of(conn, event_id), "content": content}
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute(update, encode(pdu).decode(), event_id)
        pdu = {**await _json_of(conn, gone), "content": {}, "depth": 99}
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute(update, encode(pdu).decode(), gone)
        pdu = {**await _json_of(conn, gone), "content": {}}
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute(
                "UPDATE events SET json = $1, sender = 'x' WHERE event_id = $2",
                encode(pdu).decode(),
                gone,
            )
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("DELETE FROM events WHERE event_id = $1", gone)
        assert await conn.fetchval("SELECT count(*) FROM purged_events") == 0
        # The one change allowed, recorded with the redaction that allowed it.
        await conn.execute(update, encode(pdu).decode(), gone)
        record = await conn.fetchrow("SELECT * FROM purged_events")
        assert record["event_id"] == gone
        redaction = await conn.fetchval(
            "SELECT redaction_id FROM redactions WHERE redacts = $1", gone
        )
        assert record["redaction_id"] == redaction
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("event_type", "content"),
    [
        ("m.room.message", {"msgtype": "m.text", "body": "x", "format": "y"}),
        ("m.room.member", {"membership": "join", "displayname": "d", "avatar_url": "a"}),
        (
            "m.room.member",
            {
                "membership": "invite",
                "third_party_invite": {"signed": {"a": 1}, "display_name": "x"},
            },
        ),
        ("m.room.member", {"membership": "join", "join_authorised_via_users_server": "@u:s"}),
        ("m.room.create", {"room_version": "11", "creator": "@u:s", "extra": True}),
        ("m.room.join_rules", {"join_rule": "restricted", "allow": [], "other": 1}),
        ("m.room.power_levels", {"ban": 50, "users": {"@u:s": 100}, "notifications": {}}),
        ("m.room.history_visibility", {"history_visibility": "shared", "x": 1}),
        ("m.room.redaction", {"redacts": "$e", "reason": "spam"}),
        ("m.room.topic", {"topic": "t"}),
        ("com.linkchat.message", {"body": "b"}),
        ("m.room.aliases", {"aliases": ["#a:s"], "x": 1}),
        ("m.room.power_levels", {"invite": 0, "kick": 50, "events_default": 0}),
    ],
)
async def test_the_database_redacts_as_the_server_does(
    hs: MatrixClient, run_dsn: str, event_type: str, content: dict[str, Any]
) -> None:
    # In every room version (the trigger redacts by the room's), and as version 11 where
    # no version is known (migration 0006's function, kept).
    conn = await asyncpg.connect(run_dsn)
    try:
        for version in [None, *KNOWN]:
            in_sql = await conn.fetchval(
                "SELECT redacted_content($1, $2::jsonb, $3)::text",
                event_type,
                json.dumps(content),
                version,
            )
            expected = redact_content(event_type, content, room_version(version) or LEGACY)
            assert json.loads(in_sql) == expected, version
        legacy = await conn.fetchval(
            "SELECT redacted_content($1, $2::jsonb)::text", event_type, json.dumps(content)
        )
    finally:
        await conn.close()
    assert json.loads(legacy) == redact_content(event_type, content, LEGACY)


async def test_purge_redacted_command(
    start_app: AppFactory, fresh_dsn: str, data_dir: Path, tmp_path: Path
) -> None:
    hs = await start_app(dsn=fresh_dsn)
    await _one_redacted(hs)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"database": {"dsn": fresh_dsn}, "data_dir": str(data_dir)}))

    async def homeserver(*args: str) -> tuple[int, str]:
        outcome = await run_homeserver(*args, "--config", str(config), merged=True)
        return outcome.code, outcome.stdout

    code, out = await homeserver("admin", "purge-redacted", "--older-than", "30d")
    assert code == 0, out
    assert "purged the content of 0 redacted events" in out
    await asyncio.sleep(0.01)
    code, out = await homeserver("admin", "purge-redacted", "--older-than", "0")
    assert code == 0, out
    assert "purged the content of 1 redacted events" in out
    assert await _secrets_in_database(fresh_dsn) == []
    code, out = await homeserver("audit", "verify")
    assert code == 0, out
    assert "1 purged" in out
    code, out = await homeserver("audit", "replay")
    assert code == 0, out
    assert out.startswith("ok: ")
