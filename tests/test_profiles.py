"""Profiles: display names and avatars, and the member events that show them in every room."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import jsonschema
import pytest

from homeserver.events.content.profile import ProfileContent
from tests.audit_log import assert_replay_identical
from tests.conftest import AppFactory
from tests.matrix import MatrixClient, User

SCHEMA = Path(__file__).resolve().parent.parent / "spec" / "events" / "com.linkchat.profile.json"
AVATAR = "mxc://localhost/AbCdEf123_-"


async def _member(hs: MatrixClient, user: User, room: str, of: User) -> dict[str, Any]:
    return dict(await hs.ok("GET", f"rooms/{room}/state/m.room.member/{of.user_id}", user=user))


async def _set(hs: MatrixClient, user: User, field: str, value: object) -> None:
    await hs.ok("PUT", f"profile/{user.user_id}/{field}", {field: value}, user=user)


def _localpart(user: User) -> str:
    return user.user_id[1:].split(":")[0]


async def test_a_new_user_is_named_by_their_localpart(hs: MatrixClient) -> None:
    alice = await hs.register()
    assert await hs.ok("GET", f"profile/{alice.user_id}") == {"displayname": _localpart(alice)}
    assert await hs.ok("GET", f"profile/{alice.user_id}/displayname") == {
        "displayname": _localpart(alice)
    }
    assert await hs.ok("GET", f"profile/{alice.user_id}/avatar_url") == {}


async def test_display_name_and_avatar_are_set_by_their_owner(hs: MatrixClient) -> None:
    alice = await hs.register()
    await _set(hs, alice, "displayname", "Alice Liddell")
    await _set(hs, alice, "avatar_url", AVATAR)
    assert await hs.ok("GET", f"profile/{alice.user_id}") == {
        "displayname": "Alice Liddell",
        "avatar_url": AVATAR,
    }
    assert await hs.ok("GET", f"profile/{alice.user_id}/avatar_url") == {"avatar_url": AVATAR}


async def test_a_profile_change_shows_in_every_joined_room_and_in_the_other_members_sync(
    hs: MatrixClient,
) -> None:
    alice, bob = await hs.register(), await hs.register()
    first = await hs.create_room(alice, preset="public_chat")
    second = await hs.create_room(alice, preset="private_chat", invite=[bob.user_id])
    await hs.join(bob, first)
    await hs.join(bob, second)
    since = (await hs.sync(bob))["next_batch"]

    await _set(hs, alice, "displayname", "Queen Alice")
    await _set(hs, alice, "avatar_url", AVATAR)

    for room in (first, second):
        member = await _member(hs, bob, room, alice)
        assert member == {"membership": "join", "displayname": "Queen Alice", "avatar_url": AVATAR}
    body = await hs.sync(bob, since)
    for room in (first, second):
        changes = [
            e["content"]
            for e in body["rooms"]["join"][room]["timeline"]["events"]
            if e["type"] == "m.room.member" and e["state_key"] == alice.user_id
        ]
        assert changes[-1]["displayname"] == "Queen Alice"
        assert changes[-1]["avatar_url"] == AVATAR
    joined = await hs.ok("GET", f"rooms/{first}/joined_members", user=bob)
    assert joined["joined"][alice.user_id] == {"display_name": "Queen Alice", "avatar_url": AVATAR}


async def test_someone_else_cannot_change_a_profile(hs: MatrixClient) -> None:
    alice, mallory = await hs.register(), await hs.register()
    reply = await hs.request(
        "PUT", f"profile/{alice.user_id}/displayname", {"displayname": "pwned"}, user=mallory
    )
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    reply = await hs.request("DELETE", f"profile/{alice.user_id}/displayname", user=mallory)
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    assert await hs.ok("GET", f"profile/{alice.user_id}") == {"displayname": _localpart(alice)}


async def test_unknown_users_have_no_profile(hs: MatrixClient) -> None:
    reply = await hs.request("GET", "profile/@nobody_here_at_all:localhost")
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    reply = await hs.request("GET", "profile/@nobody_here_at_all:localhost/displayname")
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    reply = await hs.request("GET", "profile/not-a-user-id")
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")


@pytest.mark.parametrize(
    ("field", "body", "errcode"),
    [
        ("displayname", {"displayname": 42}, "M_INVALID_PARAM"),
        ("displayname", {"displayname": None}, "M_INVALID_PARAM"),
        ("displayname", {"displayname": "x" * 257}, "M_INVALID_PARAM"),
        ("displayname", {"name": "wrong key"}, "M_MISSING_PARAM"),
        ("avatar_url", {"avatar_url": "https://example.com/cat.png"}, "M_INVALID_PARAM"),
        ("avatar_url", {"avatar_url": "mxc://localhost/../../etc/passwd"}, "M_INVALID_PARAM"),
        ("avatar_url", {"avatar_url": ["mxc://localhost/abc"]}, "M_INVALID_PARAM"),
        ("pronouns", {"pronouns": "she/her"}, "M_INVALID_PARAM"),
    ],
)
async def test_bad_profile_values_are_refused(
    hs: MatrixClient, field: str, body: dict[str, Any], errcode: str
) -> None:
    alice = await hs.register()
    reply = await hs.request("PUT", f"profile/{alice.user_id}/{field}", body, user=alice)
    assert (reply.status, reply.errcode) == (400, errcode)
    assert await hs.ok("GET", f"profile/{alice.user_id}") == {"displayname": _localpart(alice)}


async def test_a_profile_body_must_be_a_json_object(hs: MatrixClient) -> None:
    alice = await hs.register()
    path = f"profile/{alice.user_id}/displayname"
    reply = await hs.request("PUT", path, raw=b"{not json", user=alice)
    assert (reply.status, reply.errcode) == (400, "M_NOT_JSON")
    reply = await hs.request("PUT", path, ["Alice"], user=alice)
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")


async def test_a_256_character_display_name_is_the_longest_allowed(hs: MatrixClient) -> None:
    alice = await hs.register()
    await _set(hs, alice, "displayname", "é" * 256)
    assert (await hs.ok("GET", f"profile/{alice.user_id}"))["displayname"] == "é" * 256


async def test_an_empty_value_or_delete_removes_the_field_everywhere(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    await _set(hs, alice, "avatar_url", AVATAR)
    await _set(hs, alice, "displayname", "")
    assert await hs.ok("GET", f"profile/{alice.user_id}") == {"avatar_url": AVATAR}
    await hs.ok("DELETE", f"profile/{alice.user_id}/avatar_url", user=alice)
    assert await hs.ok("GET", f"profile/{alice.user_id}") == {}
    assert await _member(hs, alice, room, alice) == {"membership": "join"}


async def test_joins_and_invites_carry_the_current_profile(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    await _set(hs, bob, "displayname", "Bobby Tables")
    await _set(hs, bob, "avatar_url", AVATAR)
    room = await hs.create_room(alice, preset="private_chat", invite=[bob.user_id])
    invited = await _member(hs, alice, room, bob)
    assert invited == {"membership": "invite", "displayname": "Bobby Tables", "avatar_url": AVATAR}
    await hs.join(bob, room)
    joined = await _member(hs, alice, room, bob)
    assert joined == {"membership": "join", "displayname": "Bobby Tables", "avatar_url": AVATAR}


async def test_the_changer_gets_the_change_without_the_rooms_state_again(
    hs: MatrixClient,
) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice, name="Quiet room")
    since = (await hs.sync(alice))["next_batch"]
    await _set(hs, alice, "displayname", "Renamed")
    section = (await hs.sync(alice, since))["rooms"]["join"][room]
    assert section["state"]["events"] == []
    assert section["timeline"]["limited"] is False
    assert [
        (e["type"], e["content"].get("displayname")) for e in section["timeline"]["events"]
    ] == [("m.room.member", "Renamed")]


async def test_leaving_and_joining_again_between_two_syncs_is_still_a_new_join(
    hs: MatrixClient,
) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat", name="Back again")
    await hs.join(bob, room)
    since = (await hs.sync(bob))["next_batch"]
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=bob)
    await hs.join(bob, room)
    for n in range(12):
        await hs.send(alice, room, {"msgtype": "m.text", "body": f"m{n}"})
    section = (await hs.sync(bob, since))["rooms"]["join"][room]
    assert "m.room.create" in {e["type"] for e in section["state"]["events"]}


async def test_a_room_the_user_left_is_not_rejoined_by_a_profile_change(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=bob)
    await _set(hs, bob, "displayname", "Gone")
    assert (await _member(hs, alice, room, bob))["membership"] == "leave"
    assert room not in (await hs.ok("GET", "joined_rooms", user=bob))["joined_rooms"]


async def test_a_room_refusing_the_join_event_does_not_stop_the_change(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    open_room = await hs.create_room(alice, preset="public_chat")
    closed = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, open_room)
    await hs.join(bob, closed)
    # Nobody may join a room whose join rule is "private", not even again.
    await hs.ok(
        "PUT", f"rooms/{closed}/state/m.room.join_rules/", {"join_rule": "private"}, user=alice
    )
    await _set(hs, bob, "displayname", "Bob Everywhere")
    assert (await hs.ok("GET", f"profile/{bob.user_id}"))["displayname"] == "Bob Everywhere"
    assert (await _member(hs, alice, open_room, bob))["displayname"] == "Bob Everywhere"
    assert (await _member(hs, alice, closed, bob))["displayname"] == _localpart(bob)


async def test_concurrent_changes_of_both_fields_both_survive(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    await asyncio.gather(
        _set(hs, alice, "displayname", "Both"), _set(hs, alice, "avatar_url", AVATAR)
    )
    expected = {"displayname": "Both", "avatar_url": AVATAR}
    assert await hs.ok("GET", f"profile/{alice.user_id}") == expected
    assert await _member(hs, alice, room, alice) == {"membership": "join", **expected}


async def test_setting_the_same_name_again_sends_nothing(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    await _set(hs, alice, "displayname", "Same")
    since = (await hs.sync(bob))["next_batch"]
    await _set(hs, alice, "displayname", "Same")
    assert room not in (await hs.sync(bob, since))["rooms"]["join"]


async def test_profiles_are_rebuilt_identically_from_the_log(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    hs = await start_app(dsn=fresh_dsn)
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    await _set(hs, alice, "displayname", "Alice")
    await _set(hs, alice, "avatar_url", AVATAR)
    await _set(hs, bob, "displayname", "")
    await hs.ok(
        "PUT", f"rooms/{room}/state/m.room.join_rules/", {"join_rule": "invite"}, user=alice
    )
    conn = await asyncpg.connect(fresh_dsn)
    try:
        rows = await conn.fetch("SELECT user_id, displayname, avatar_url FROM profiles")
        profiles = {r["user_id"]: (r["displayname"], r["avatar_url"]) for r in rows}
    finally:
        await conn.close()
    assert profiles == {alice.user_id: ("Alice", AVATAR), bob.user_id: (None, None)}
    await assert_replay_identical(fresh_dsn)


def test_the_profile_schema_agrees_with_the_model() -> None:
    schema = json.loads(SCHEMA.read_text())
    good = [{}, {"displayname": "Alice"}, {"displayname": "A", "avatar_url": AVATAR}]
    bad = [{"displayname": 1}, {"displayname": "x" * 257}, {"avatar_url": "x" * 1001}]
    for content in good:
        jsonschema.validate(content, schema)
        ProfileContent.model_validate(content)
    for content in bad:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(content, schema)
        with pytest.raises(ValueError):
            ProfileContent.model_validate(content)
