"""POST /rooms/{roomId}/upgrade: the spec's room upgrade, as Synapse carries it out."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any
from urllib.parse import quote

from tests.matrix import MatrixClient, Reply, User

VERSION = "11"
LOUD = ["notify", {"set_tweak": "sound", "value": "default"}]


async def _upgrade(hs: MatrixClient, user: User, room: str, version: str = VERSION) -> Reply:
    return await hs.request("POST", f"rooms/{room}/upgrade", {"new_version": version}, user=user)


async def _upgraded(hs: MatrixClient, user: User, room: str, version: str = VERSION) -> str:
    reply = await _upgrade(hs, user, room, version)
    assert reply.status == 200, reply.body
    return str(reply.body["replacement_room"])


async def _state(hs: MatrixClient, user: User, room: str, event_type: str, key: str = "") -> Any:
    return await hs.ok("GET", f"rooms/{room}/state/{event_type}/{key}", user=user)


async def _state_event(hs: MatrixClient, user: User, room: str, event_type: str) -> Any:
    return await hs.ok("GET", f"rooms/{room}/state/{event_type}/?format=event", user=user)


def _alias_path(alias: str) -> str:
    return "directory/room/" + quote(alias, safe="")


async def test_upgrade_tombstones_the_old_room_and_links_the_new_one(hs: MatrixClient) -> None:
    alice = await hs.register()
    old = await hs.create_room(alice, preset="public_chat", name="Before")
    last = await hs.send(alice, old, {"msgtype": "m.text", "body": "last words"})
    new = await _upgraded(hs, alice, old)
    assert new != old and new.startswith("!")
    tombstone = await _state_event(hs, alice, old, "m.room.tombstone")
    assert tombstone["sender"] == alice.user_id
    assert tombstone["content"]["replacement_room"] == new
    assert isinstance(tombstone["content"]["body"], str)
    create = await _state_event(hs, alice, new, "m.room.create")
    assert create["sender"] == alice.user_id
    assert create["content"]["room_version"] == VERSION
    assert create["content"]["predecessor"] == {"room_id": old, "event_id": last}
    assert new in (await hs.ok("GET", "joined_rooms", user=alice))["joined_rooms"]


async def test_new_room_copies_the_state_the_spec_names(hs: MatrixClient) -> None:
    alice, bob, mallory = await hs.register(), await hs.register(), await hs.register()
    crowd = [f"@crowd{i}_{secrets.token_hex(3)}:localhost" for i in range(150)]
    old = await hs.create_room(
        alice,
        preset="public_chat",
        name="Club",
        topic="Everything",
        creation_content={"type": "com.example.club"},
        initial_state=[
            {"type": "m.room.avatar", "content": {"url": "mxc://localhost/club"}},
            {"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1.aes-sha2"}},
            {"type": "m.room.guest_access", "content": {"guest_access": "can_join"}},
            {
                "type": "m.room.history_visibility",
                "content": {"history_visibility": "world_readable"},
            },
            {"type": "m.room.join_rules", "content": {"join_rule": "knock"}},
            {"type": "com.example.custom", "content": {"kept": False}},
        ],
    )
    await hs.ok("POST", f"rooms/{old}/invite", {"user_id": bob.user_id}, user=alice)
    await hs.join(bob, old)
    levels = await _state(hs, alice, old, "m.room.power_levels")
    levels["users"].update({user: 1 for user in crowd})
    levels["users"][bob.user_id] = 50
    levels["events"]["com.example.custom"] = 20
    await hs.ok("PUT", f"rooms/{old}/state/m.room.power_levels/", levels, user=alice)
    await hs.ok("POST", f"rooms/{old}/ban", {"user_id": mallory.user_id}, user=alice)
    new = await _upgraded(hs, alice, old)
    assert await _state(hs, alice, new, "m.room.name") == {"name": "Club"}
    assert await _state(hs, alice, new, "m.room.topic") == {"topic": "Everything"}
    assert await _state(hs, alice, new, "m.room.avatar") == {"url": "mxc://localhost/club"}
    encryption = await _state(hs, alice, new, "m.room.encryption")
    assert encryption == {"algorithm": "m.megolm.v1.aes-sha2"}
    guests = await _state(hs, alice, new, "m.room.guest_access")
    assert guests == {"guest_access": "can_join"}
    history = await _state(hs, alice, new, "m.room.history_visibility")
    assert history == {"history_visibility": "world_readable"}
    assert await _state(hs, alice, new, "m.room.join_rules") == {"join_rule": "knock"}
    assert await _state(hs, alice, new, "m.room.power_levels") == levels
    create = await _state(hs, alice, new, "m.room.create")
    assert create["type"] == "com.example.club"
    banned = await _state(hs, alice, new, "m.room.member", mallory.user_id)
    assert banned["membership"] == "ban"
    # Not copied: other members, and state outside the spec's list.
    reply = await hs.request("GET", f"rooms/{new}/state/com.example.custom/", user=alice)
    assert reply.status == 404
    joined = (await hs.ok("GET", f"rooms/{new}/joined_members", user=alice))["joined"]
    assert list(joined) == [alice.user_id]


async def test_old_room_power_levels_stop_ordinary_members(hs: MatrixClient) -> None:
    alice, bob, carol = await hs.register(), await hs.register(), await hs.register()
    old = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, old)
    await _upgraded(hs, alice, old)
    levels = await _state(hs, alice, old, "m.room.power_levels")
    assert levels["events_default"] == 50 and levels["invite"] == 50
    said = await hs.request(
        "PUT", f"rooms/{old}/send/m.room.message/t1", {"body": "hello?"}, user=bob
    )
    assert (said.status, said.errcode) == (403, "M_FORBIDDEN")
    invited = await hs.request("POST", f"rooms/{old}/invite", {"user_id": carol.user_id}, user=bob)
    assert invited.status == 403


async def test_local_aliases_move_and_the_canonical_alias_follows(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    name = "club_" + secrets.token_hex(4)
    old = await hs.create_room(alice, preset="public_chat", room_alias_name=name)
    main = f"#{name}:localhost"
    alt = f"#alt_{secrets.token_hex(4)}:localhost"
    await hs.join(bob, old)
    await hs.ok("PUT", _alias_path(alt), {"room_id": old}, user=bob)
    await hs.ok(
        "PUT",
        f"rooms/{old}/state/m.room.canonical_alias/",
        {"alias": main, "alt_aliases": [alt]},
        user=alice,
    )
    new = await _upgraded(hs, alice, old)
    for alias in (main, alt):
        assert (await hs.ok("GET", _alias_path(alias)))["room_id"] == new
    assert sorted((await hs.ok("GET", f"rooms/{new}/aliases", user=alice))["aliases"]) == sorted(
        [main, alt]
    )
    assert (await hs.ok("GET", f"rooms/{old}/aliases", user=alice))["aliases"] == []
    canonical = await _state(hs, alice, new, "m.room.canonical_alias")
    assert canonical == {"alias": main, "alt_aliases": [alt]}
    assert await _state(hs, alice, old, "m.room.canonical_alias") == {}
    # Bob made the alternative alias and may still delete it.
    assert (await hs.request("DELETE", _alias_path(alt), user=bob)).status == 200


async def test_tags_and_room_push_rules_follow_the_upgrade(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    old = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, old)
    for user in (alice, bob):
        await hs.ok(
            "PUT", f"user/{user.user_id}/rooms/{old}/tags/u.work", {"order": 0.5}, user=user
        )
        await hs.ok("PUT", f"pushrules/global/room/{quote(old)}", {"actions": LOUD}, user=user)
    await hs.ok(
        "PUT",
        "pushrules/global/override/quiet_club",
        {
            "actions": [],
            "conditions": [{"kind": "event_match", "key": "room_id", "pattern": old}],
        },
        user=alice,
    )
    new = await _upgraded(hs, alice, old)
    for user in (alice, bob):
        tags = await hs.ok("GET", f"user/{user.user_id}/rooms/{new}/tags", user=user)
        assert tags == {"tags": {"u.work": {"order": 0.5}}}
        rule = await hs.ok("GET", f"pushrules/global/room/{quote(new)}", user=user)
        assert rule["actions"] == LOUD and rule["enabled"] is True
        kept = await hs.ok("GET", f"pushrules/global/room/{quote(old)}", user=user)
        assert kept["actions"] == LOUD
    overrides = (await hs.ok("GET", "pushrules/", user=alice))["global"]["override"]
    copied = [r for r in overrides if any(c.get("pattern") == new for c in r.get("conditions", []))]
    assert len(copied) == 1 and copied[0]["actions"] == []


async def test_published_room_is_replaced_in_the_room_directory(hs: MatrixClient) -> None:
    alice = await hs.register()
    old = await hs.create_room(alice, visibility="public", preset="public_chat")
    new = await _upgraded(hs, alice, old)
    assert await hs.ok("GET", f"directory/list/room/{new}") == {"visibility": "public"}
    assert await hs.ok("GET", f"directory/list/room/{old}") == {"visibility": "private"}


async def test_upgrade_errors_are_the_specs(hs: MatrixClient) -> None:
    alice, bob, stranger = await hs.register(), await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    unknown = await _upgrade(hs, alice, "!nosuchroom:localhost")
    assert (unknown.status, unknown.errcode) == (404, "M_NOT_FOUND")
    unsupported = await _upgrade(hs, alice, room, "999")
    assert (unsupported.status, unsupported.errcode) == (400, "M_UNSUPPORTED_ROOM_VERSION")
    powerless = await _upgrade(hs, bob, room)
    assert (powerless.status, powerless.errcode) == (403, "M_FORBIDDEN")
    outsider = await _upgrade(hs, stranger, room)
    assert (outsider.status, outsider.errcode) == (403, "M_FORBIDDEN")
    missing = await hs.request("POST", f"rooms/{room}/upgrade", {}, user=alice)
    assert (missing.status, missing.errcode) == (400, "M_MISSING_PARAM")
    # Nothing was changed by the refusals.
    reply = await hs.request("GET", f"rooms/{room}/state/m.room.tombstone/", user=alice)
    assert reply.status == 404


async def test_an_upgrade_asked_twice_at_once_makes_one_new_room(hs: MatrixClient) -> None:
    """A client retrying its upgrade gets the first one's answer; another admin asking
    at the same time is refused. The old room has one tombstone, and one successor."""
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    levels = await _state(hs, alice, room, "m.room.power_levels")
    levels["users"][bob.user_id] = 100
    await hs.ok("PUT", f"rooms/{room}/state/m.room.power_levels/", levels, user=alice)

    first, again, other = await asyncio.gather(
        _upgrade(hs, alice, room), _upgrade(hs, alice, room), _upgrade(hs, bob, room)
    )
    assert first.status == 200, first.body
    assert again.status == 200, again.body
    assert again.body["replacement_room"] == first.body["replacement_room"]
    assert (other.status, other.errcode) == (400, "M_UNKNOWN")
    history = await hs.ok("GET", f"rooms/{room}/messages?dir=b&limit=100", user=alice)
    tombstones = [e for e in history["chunk"] if e["type"] == "m.room.tombstone"]
    assert len(tombstones) == 1
    joined = (await hs.ok("GET", "joined_rooms", user=alice))["joined_rooms"]
    assert sorted(joined) == sorted([room, first.body["replacement_room"]])
