"""createRoom and room state, as a client sees them over HTTP."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

from tests.matrix import MatrixClient, User


def _alias_name() -> str:
    return "room_" + secrets.token_hex(5)


async def _state(hs: MatrixClient, user: User, room: str, event_type: str, key: str = "") -> Any:
    return await hs.ok("GET", f"rooms/{room}/state/{event_type}/{key}", user=user)


async def _joined_rooms(hs: MatrixClient, user: User) -> list[str]:
    body = await hs.ok("GET", "joined_rooms", user=user)
    return list(body["joined_rooms"])


# Presets


async def test_private_chat_preset_makes_an_invite_only_room(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice, preset="private_chat")
    assert (await _state(hs, alice, room, "m.room.join_rules")) == {"join_rule": "invite"}
    visibility = await _state(hs, alice, room, "m.room.history_visibility")
    assert visibility == {"history_visibility": "shared"}
    assert (await _state(hs, alice, room, "m.room.guest_access")) == {"guest_access": "can_join"}
    levels = await _state(hs, alice, room, "m.room.power_levels")
    assert levels["users"] == {alice.user_id: 100}


async def test_public_chat_preset_makes_a_public_room_without_guests(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    assert (await _state(hs, alice, room, "m.room.join_rules")) == {"join_rule": "public"}
    visibility = await _state(hs, alice, room, "m.room.history_visibility")
    assert visibility == {"history_visibility": "shared"}
    assert (await _state(hs, alice, room, "m.room.guest_access")) == {"guest_access": "forbidden"}


async def test_trusted_private_chat_gives_invitees_the_creators_power(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="trusted_private_chat", invite=[bob.user_id])
    assert (await _state(hs, alice, room, "m.room.join_rules")) == {"join_rule": "invite"}
    assert (await _state(hs, alice, room, "m.room.guest_access")) == {"guest_access": "can_join"}
    levels = await _state(hs, alice, room, "m.room.power_levels")
    assert levels["users"] == {alice.user_id: 100, bob.user_id: 100}


async def test_public_visibility_without_preset_makes_a_public_room(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, visibility="public")
    assert (await _state(hs, alice, room, "m.room.join_rules")) == {"join_rule": "public"}
    await hs.join(bob, room)
    assert room in await _joined_rooms(hs, bob)


async def test_room_without_preset_or_visibility_is_invite_only(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    assert (await _state(hs, alice, room, "m.room.join_rules")) == {"join_rule": "invite"}


async def test_unknown_preset_is_refused(hs: MatrixClient) -> None:
    alice = await hs.register()
    before = await _joined_rooms(hs, alice)
    reply = await hs.request("POST", "createRoom", {"preset": "party_chat"}, user=alice)
    assert reply.status == 400
    assert await _joined_rooms(hs, alice) == before


# Request fields


async def test_name_and_topic_are_set(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice, name="Garden", topic="Tomatoes and more")
    assert (await _state(hs, alice, room, "m.room.name")) == {"name": "Garden"}
    assert (await _state(hs, alice, room, "m.room.topic"))["topic"] == "Tomatoes and more"


async def test_room_alias_name_creates_an_alias_that_resolves(hs: MatrixClient) -> None:
    alice = await hs.register()
    name = _alias_name()
    body = await hs.ok("POST", "createRoom", {"room_alias_name": name}, user=alice)
    alias = body["room_alias"]
    assert alias.startswith(f"#{name}:")
    resolved = await hs.ok("GET", f"directory/room/{quote(alias)}")
    assert resolved["room_id"] == body["room_id"]
    canonical = await _state(hs, alice, body["room_id"], "m.room.canonical_alias")
    assert canonical["alias"] == alias


async def test_taken_alias_is_refused_and_no_room_is_made(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    name = _alias_name()
    first = await hs.create_room(alice, room_alias_name=name)
    reply = await hs.request(
        "POST", "createRoom", {"room_alias_name": name, "name": "copycat"}, user=bob
    )
    assert reply.status == 400
    assert reply.errcode == "M_ROOM_IN_USE"
    assert await _joined_rooms(hs, bob) == []
    resolved = await hs.ok("GET", f"directory/room/{quote(f'#{name}:localhost')}")
    assert resolved["room_id"] == first


async def test_invitee_shows_as_invited_in_the_member_list(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, invite=[bob.user_id])
    members = await hs.ok("GET", f"rooms/{room}/members", user=alice)
    by_user = {event["state_key"]: event["content"]["membership"] for event in members["chunk"]}
    assert by_user == {alice.user_id: "join", bob.user_id: "invite"}


async def test_direct_chat_invite_carries_is_direct(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(
        alice, preset="trusted_private_chat", invite=[bob.user_id], is_direct=True
    )
    invite = await _state(hs, alice, room, "m.room.member", bob.user_id)
    assert invite["membership"] == "invite"
    assert invite["is_direct"] is True


async def test_invite_to_unknown_user_is_refused(hs: MatrixClient) -> None:
    alice = await hs.register()
    reply = await hs.request(
        "POST",
        "createRoom",
        {"invite": ["@nobody_" + secrets.token_hex(4) + ":localhost"]},
        user=alice,
    )
    assert reply.status == 404
    assert await _joined_rooms(hs, alice) == []


async def test_initial_state_is_applied(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(
        alice,
        preset="public_chat",
        initial_state=[
            {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}},
            {"type": "com.linkchat.settings", "state_key": "theme", "content": {"dark": True}},
        ],
    )
    visibility = await _state(hs, alice, room, "m.room.history_visibility")
    assert visibility == {"history_visibility": "joined"}
    assert (await _state(hs, alice, room, "com.linkchat.settings", "theme")) == {"dark": True}


async def test_power_level_override_is_merged_into_the_defaults(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice, power_level_content_override={"invite": 75, "kick": 60})
    levels = await _state(hs, alice, room, "m.room.power_levels")
    assert levels["invite"] == 75
    assert levels["kick"] == 60
    assert levels["ban"] == 50
    assert levels["users"] == {alice.user_id: 100}


async def test_creation_content_type_is_kept_in_the_create_event(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(
        alice, creation_content={"type": "m.space", "creator": "@someone:else", "m.federate": False}
    )
    create = await _state(hs, alice, room, "m.room.create")
    assert create["type"] == "m.space"
    assert create["room_version"] == "11"
    assert create["m.federate"] is False
    assert "creator" not in create


async def test_unsupported_room_version_is_refused(hs: MatrixClient) -> None:
    alice = await hs.register()
    reply = await hs.request(
        "POST", "createRoom", {"room_version": "org.example.custom"}, user=alice
    )
    assert reply.status == 400
    assert reply.errcode == "M_UNSUPPORTED_ROOM_VERSION"
    assert await _joined_rooms(hs, alice) == []


async def test_initial_state_the_creator_may_not_set_is_refused(hs: MatrixClient) -> None:
    alice = await hs.register()
    name = _alias_name()
    reply = await hs.request(
        "POST",
        "createRoom",
        {
            "room_alias_name": name,
            "power_level_content_override": {"users": {alice.user_id: 10}},
            "name": "Out of reach",
        },
        user=alice,
    )
    assert reply.status == 400
    assert reply.errcode == "M_INVALID_ROOM_STATE"
    assert await _joined_rooms(hs, alice) == []
    missing = await hs.request("GET", f"directory/room/{quote(f'#{name}:localhost')}")
    assert missing.status == 404


# Reading and writing state


async def test_room_state_lists_every_state_event(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice, preset="public_chat", name="Listed")
    state = await hs.ok("GET", f"rooms/{room}/state", user=alice)
    kinds = {(event["type"], event["state_key"]) for event in state}
    assert {
        ("m.room.create", ""),
        ("m.room.member", alice.user_id),
        ("m.room.power_levels", ""),
        ("m.room.join_rules", ""),
        ("m.room.history_visibility", ""),
        ("m.room.guest_access", ""),
        ("m.room.name", ""),
    } <= kinds
    name = next(event for event in state if event["type"] == "m.room.name")
    assert name["content"] == {"name": "Listed"}
    assert name["event_id"].startswith("$")
    assert name["room_id"] == room


async def test_state_event_can_be_read_as_a_whole_event(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice, name="Whole")
    event = await hs.ok("GET", f"rooms/{room}/state/m.room.name/?format=event", user=alice)
    assert event["type"] == "m.room.name"
    assert event["state_key"] == ""
    assert event["content"] == {"name": "Whole"}
    assert event["sender"] == alice.user_id
    assert event["room_id"] == room
    assert event["event_id"].startswith("$")


async def test_state_event_without_trailing_slash_is_served(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice, name="No slash")
    assert (await hs.ok("GET", f"rooms/{room}/state/m.room.name", user=alice)) == {
        "name": "No slash"
    }


async def test_missing_state_event_is_not_found(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    reply = await hs.request("GET", f"rooms/{room}/state/m.room.topic/", user=alice)
    assert reply.status == 404
    assert reply.errcode == "M_NOT_FOUND"


async def test_setting_state_returns_an_event_id_and_the_new_value_is_served(
    hs: MatrixClient,
) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice, name="Before")
    body = await hs.ok("PUT", f"rooms/{room}/state/m.room.name/", {"name": "After"}, user=alice)
    assert body["event_id"].startswith("$")
    assert (await _state(hs, alice, room, "m.room.name")) == {"name": "After"}
    event = await hs.ok("GET", f"rooms/{room}/state/m.room.name/?format=event", user=alice)
    assert event["event_id"] == body["event_id"]


async def test_custom_state_with_a_state_key_round_trips(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    content = {"commands": ["lock", "unlock"], "version": 3}
    await hs.ok(
        "PUT", f"rooms/{room}/state/com.linkchat.device.capabilities/DEVICE1", content, user=alice
    )
    served = await _state(hs, alice, room, "com.linkchat.device.capabilities", "DEVICE1")
    assert served == content


async def test_non_member_cannot_read_room_state(hs: MatrixClient) -> None:
    alice, mallory = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat", name="Private talk")
    whole = await hs.request("GET", f"rooms/{room}/state", user=mallory)
    assert whole.status == 403
    assert whole.errcode == "M_FORBIDDEN"
    one = await hs.request("GET", f"rooms/{room}/state/m.room.name/", user=mallory)
    assert one.status == 403
    assert one.errcode == "M_FORBIDDEN"


async def test_non_member_cannot_set_room_state(hs: MatrixClient) -> None:
    alice, mallory = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat", name="Mine")
    reply = await hs.request(
        "PUT", f"rooms/{room}/state/m.room.name/", {"name": "Hijacked"}, user=mallory
    )
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"
    assert (await _state(hs, alice, room, "m.room.name")) == {"name": "Mine"}


async def test_member_without_power_cannot_rename_the_room(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat", name="Original")
    await hs.join(bob, room)
    reply = await hs.request(
        "PUT", f"rooms/{room}/state/m.room.name/", {"name": "Renamed"}, user=bob
    )
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"
    assert "50" in reply.body["error"]
    assert "m.room.name" in reply.body["error"]
    assert (await _state(hs, alice, room, "m.room.name")) == {"name": "Original"}


async def test_setting_state_in_an_unknown_room_is_not_found(hs: MatrixClient) -> None:
    alice = await hs.register()
    reply = await hs.request(
        "PUT", "rooms/!nosuchroom:localhost/state/m.room.name/", {"name": "x"}, user=alice
    )
    assert reply.status == 404
    assert reply.errcode == "M_NOT_FOUND"


# Idempotence: a client repeating itself appends nothing (as Synapse)


async def _timeline_length(hs: MatrixClient, user: User, room: str) -> int:
    body = await hs.ok("GET", f"rooms/{room}/messages?dir=b&limit=1000", user=user)
    return len(body["chunk"])


async def test_setting_identical_state_again_returns_the_current_event(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    path = f"rooms/{room}/state/m.room.topic/"
    first = await hs.ok("PUT", path, {"topic": "same", "n": 1}, user=alice)
    length = await _timeline_length(hs, alice, room)
    again = await hs.ok("PUT", path, {"n": 1, "topic": "same"}, user=alice)
    assert again["event_id"] == first["event_id"]
    assert await _timeline_length(hs, alice, room) == length
    changed = await hs.ok("PUT", path, {"topic": "same", "n": True}, user=alice)
    assert changed["event_id"] != first["event_id"]
    assert await _timeline_length(hs, alice, room) == length + 1


async def test_identical_state_from_another_sender_is_a_new_event(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    await hs.set_level(alice, room, bob, 100)
    path = f"rooms/{room}/state/m.room.topic/"
    first = await hs.ok("PUT", path, {"topic": "shared"}, user=alice)
    second = await hs.ok("PUT", path, {"topic": "shared"}, user=bob)
    assert second["event_id"] != first["event_id"]
    event = await hs.ok("GET", f"{path}?format=event", user=alice)
    assert event["sender"] == bob.user_id


async def test_state_set_again_after_its_redaction_is_a_new_event(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice, name="Named")
    path = f"rooms/{room}/state/m.room.name/"
    named = await hs.ok("GET", f"{path}?format=event", user=alice)
    await hs.ok("PUT", f"rooms/{room}/redact/{named['event_id']}/r1", {}, user=alice)
    again = await hs.ok("PUT", path, {"name": "Named"}, user=alice)
    assert again["event_id"] != named["event_id"]
    assert (await _state(hs, alice, room, "m.room.name")) == {"name": "Named"}


# world_readable rooms: anyone reads the state, as they read the messages


async def test_anyone_reads_the_state_of_a_world_readable_room(hs: MatrixClient) -> None:
    alice, stranger = await hs.register(), await hs.register()
    name = "open_" + secrets.token_hex(4)
    room = await hs.create_room(
        alice,
        preset="private_chat",
        name="Open book",
        room_alias_name=name,
        initial_state=[
            {
                "type": "m.room.history_visibility",
                "content": {"history_visibility": "world_readable"},
            }
        ],
    )
    whole = await hs.ok("GET", f"rooms/{room}/state", user=stranger)
    assert {"m.room.create", "m.room.name", "m.room.member"} <= {e["type"] for e in whole}
    assert await _state(hs, stranger, room, "m.room.name") == {"name": "Open book"}
    member = await _state(hs, stranger, room, "m.room.member", alice.user_id)
    assert member["membership"] == "join"
    event = await hs.ok("GET", f"rooms/{room}/state/m.room.name/?format=event", user=stranger)
    assert event["content"] == {"name": "Open book"}
    aliases = await hs.ok("GET", f"rooms/{room}/aliases", user=stranger)
    assert aliases == {"aliases": [f"#{name}:localhost"]}
    members = await hs.ok("GET", f"rooms/{room}/members", user=stranger)
    assert [m["state_key"] for m in members["chunk"]] == [alice.user_id]
    # No longer once the room is closed again.
    await hs.ok(
        "PUT",
        f"rooms/{room}/state/m.room.history_visibility/",
        {"history_visibility": "shared"},
        user=alice,
    )
    for path in ("state", "state/m.room.name/", "aliases", "members"):
        reply = await hs.request("GET", f"rooms/{room}/{path}", user=stranger)
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN"), path
