"""Deleting a room (DELETE /_synapse/admin/v2/rooms/{roomId}) in the background, as
Synapse does: everyone is moved out (into a new room, if asked), the aliases follow,
the room is blocked and purged if asked, and delete_status tells how it went."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

import pytest

from tests.admin import AdminServer, assert_admins_only, start_with_admin
from tests.audit_log import assert_replay_identical
from tests.conftest import AppFactory
from tests.matrix import MatrixClient, User

ADMIN = "/_synapse/admin"


async def finished(server: AdminServer, delete_id: str) -> dict[str, Any]:
    """The deletion's status once it is no longer scheduled or active."""
    hs, admin = server.hs, server.admin
    path = f"{ADMIN}/v2/rooms/delete_status/{delete_id}"
    found: dict[str, Any] = {}

    async def ended() -> bool:
        found.update(await hs.ok("GET", path, user=admin))
        return found["status"] not in ("scheduled", "active")

    await hs.eventually(ended, 30.0)
    return found


async def delete(server: AdminServer, room: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = await server.hs.ok("DELETE", f"{ADMIN}/v2/rooms/{room}", body, user=server.admin)
    assert set(reply) == {"delete_id"}
    return await finished(server, reply["delete_id"])


async def populated_room(hs: MatrixClient) -> tuple[User, User, User, str, str]:
    """A public, aliased room: its owner and bob joined, carol invited, messages sent."""
    owner, bob, carol = await hs.register(), await hs.register(), await hs.register()
    name = f"bad{secrets.token_hex(3)}"
    room = await hs.create_room(
        owner, preset="public_chat", visibility="public", name="Bad", room_alias_name=name
    )
    await hs.join(bob, room)
    await hs.ok("POST", f"rooms/{room}/invite", {"user_id": carol.user_id}, user=owner)
    await hs.send(bob, room, {"msgtype": "m.text", "body": "illegal stuff"})
    return owner, bob, carol, room, f"#{name}:localhost"


async def test_a_deleted_room_is_emptied_blocked_purged_and_replaced(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    server = await start_with_admin(start_app, fresh_dsn)
    hs, admin = server.hs, server.admin
    owner, bob, carol, room, alias = await populated_room(hs)
    notices = await hs.register()
    status = await delete(
        server,
        room,
        {
            "new_room_user_id": notices.user_id,
            "room_name": "Moved",
            "message": "That room broke the rules.",
            "block": True,
            "reason": "illegal content",
        },
    )
    shutdown = status["shutdown_room"]
    assert (status["status"], status["room_id"]) == ("complete", room)
    assert sorted(shutdown["kicked_users"]) == sorted([owner.user_id, bob.user_id, carol.user_id])
    assert (shutdown["failed_to_kick_users"], shutdown["local_aliases"]) == ([], [alias])
    new_room = shutdown["new_room_id"]
    by_room = await hs.ok("GET", f"{ADMIN}/v2/rooms/{room}/delete_status", user=admin)
    assert by_room == {"results": [status]}

    # The old room: nobody reads it, enters it or finds it any more.
    for user in (owner, bob):
        reply = await hs.request("GET", f"rooms/{room}/messages?dir=b", user=user)
        assert reply.status == 403, reply
        assert room not in (await hs.sync(user, include_leave="true")).get("rooms", {}).get(
            "leave", {}
        )
    reply = await hs.request("POST", f"join/{room}", {}, user=await hs.register())
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    assert (await hs.ok("GET", f"{ADMIN}/v1/rooms/{room}/block", user=admin))["block"] is True
    assert (await hs.request("GET", f"{ADMIN}/v1/rooms/{room}", user=admin)).status == 404
    listed = [r["room_id"] for r in (await hs.ok("GET", f"{ADMIN}/v1/rooms", user=admin))["rooms"]]
    assert room not in listed and new_room in listed
    public = await hs.ok("GET", "publicRooms", user=bob)
    assert room not in [r["room_id"] for r in public["chunk"]]

    # The new room: everyone moved in, muted, with the notice; the alias points there.
    assert (await hs.ok("GET", f"directory/room/{quote(alias)}", user=bob))["room_id"] == new_room
    members = await hs.ok("GET", f"{ADMIN}/v1/rooms/{new_room}/members", user=admin)
    assert set(members["members"]) == {notices.user_id, owner.user_id, bob.user_id, carol.user_id}
    messages = await hs.ok("GET", f"rooms/{new_room}/messages?dir=b", user=bob)
    bodies = [e["content"].get("body") for e in messages["chunk"] if e["type"] == "m.room.message"]
    assert bodies == ["That room broke the rules."]
    name = await hs.ok("GET", f"rooms/{new_room}/state/m.room.name/", user=bob)
    assert name == {"name": "Moved"}
    reply = await hs.request(
        "PUT", f"rooms/{new_room}/send/m.room.message/t1", {"body": "why"}, user=bob
    )
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")

    trail = await hs.ok("GET", f"/_linkchat/v1/admin/audit?target={room}", user=admin)
    assert [a["action"] for a in trail["actions"]] == ["room.delete", "room.block"]
    assert trail["actions"][0]["reason"] == "illegal content"
    await assert_replay_identical(fresh_dsn)


async def test_a_room_deleted_without_purge_keeps_its_history_for_those_who_were_in_it(
    start_app: AppFactory,
) -> None:
    server = await start_with_admin(start_app)
    hs, admin = server.hs, server.admin
    _, bob, _, room, alias = await populated_room(hs)
    status = await delete(server, room, {"purge": False})
    assert status["shutdown_room"]["new_room_id"] is None
    assert status["shutdown_room"]["local_aliases"] == []
    messages = await hs.ok("GET", f"rooms/{room}/messages?dir=b", user=bob)
    assert "illegal stuff" in [e["content"].get("body") for e in messages["chunk"]]
    details = await hs.ok("GET", f"{ADMIN}/v1/rooms/{room}", user=admin)
    assert details["joined_members"] == 0
    # Not blocked: the alias still leads in, and anyone may join again.
    assert (await hs.ok("GET", f"directory/room/{quote(alias)}", user=bob))["room_id"] == room
    await hs.join(bob, room)


async def test_an_unknown_room_is_blocked_if_asked_else_not_found(
    start_app: AppFactory,
) -> None:
    server = await start_with_admin(start_app)
    hs, admin = server.hs, server.admin
    reply = await hs.request("DELETE", f"{ADMIN}/v2/rooms/!unknown:localhost", {}, user=admin)
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    status = await delete(server, "!unknown2:localhost", {"block": True})
    assert status["status"] == "complete"
    block = await hs.ok("GET", f"{ADMIN}/v1/rooms/!unknown2:localhost/block", user=admin)
    assert block["block"] is True


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        (None, "M_NOT_JSON"),
        ({"block": "yes"}, "M_BAD_JSON"),
        ({"purge": 0}, "M_BAD_JSON"),
        ({"new_room_user_id": "@someone:elsewhere.example"}, "M_INVALID_PARAM"),
    ],
)
async def test_a_bad_deletion_is_refused(
    start_app: AppFactory, body: dict[str, Any] | None, errcode: str
) -> None:
    server = await start_with_admin(start_app)
    room = await server.hs.create_room(server.user)
    path = f"{ADMIN}/v2/rooms/{room}"
    reply = await server.hs.request("DELETE", path, body, user=server.admin)
    assert (reply.status, reply.errcode) == (400, errcode), reply


async def test_unknown_deletions_are_not_found(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, admin = server.hs, server.admin
    reply = await hs.request("GET", f"{ADMIN}/v2/rooms/delete_status/nope", user=admin)
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    room = await hs.create_room(server.user)
    reply = await hs.request("GET", f"{ADMIN}/v2/rooms/{room}/delete_status", user=admin)
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")


async def test_deleting_rooms_is_for_admins_only(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, user = server.hs, server.user
    room = await hs.create_room(user)
    await assert_admins_only(hs, user, "DELETE", f"{ADMIN}/v2/rooms/{room}", {})
    await assert_admins_only(hs, user, "GET", f"{ADMIN}/v2/rooms/{room}/delete_status")
    await assert_admins_only(hs, user, "GET", f"{ADMIN}/v2/rooms/delete_status/x")
    assert (await hs.ok("GET", f"rooms/{room}/joined_members", user=user))["joined"]
