"""The rooms as admins see them (/_synapse/admin/v1/rooms...): Synapse's shapes, search,
order and paging, and each room's details, members and state."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

import pytest

from tests.admin import AdminServer, assert_admins_only, start_with_admin
from tests.audit_log import assert_replay_identical
from tests.conftest import AppFactory
from tests.matrix import MatrixClient, User

ADMIN = "/_synapse/admin/v1"


async def rooms_page(server: AdminServer, query: str = "") -> dict[str, Any]:
    return dict(await server.hs.ok("GET", f"{ADMIN}/rooms{query}", user=server.admin))


async def three_rooms(server: AdminServer) -> tuple[User, dict[str, str]]:
    """Alpha (public, 3 members), beta (private, encrypted, 1), Gamma (private, 2)."""
    hs = server.hs
    owner, bob, carol = await hs.register(), await hs.register(), await hs.register()
    alpha = await hs.create_room(
        owner, preset="public_chat", visibility="public", name="Alpha", room_alias_name="alpha"
    )
    beta = await hs.create_room(
        owner,
        name="beta",
        initial_state=[
            {"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
        ],
    )
    gamma = await hs.create_room(owner, name="Gamma", topic="about gamma", invite=[bob.user_id])
    for user in (bob, carol):
        await hs.join(user, alpha)
    await hs.join(bob, gamma)
    return owner, {"Alpha": alpha, "beta": beta, "Gamma": gamma}


async def test_rooms_are_listed_as_synapse_lists_them(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    server = await start_with_admin(start_app, fresh_dsn)
    owner, rooms = await three_rooms(server)
    page = await rooms_page(server)
    assert (page["total_rooms"], page["offset"]) == (3, 0)
    assert "next_batch" not in page and "prev_batch" not in page
    # By name, by code point (capitals first).
    assert [room["name"] for room in page["rooms"]] == ["Alpha", "Gamma", "beta"]
    alpha, beta = page["rooms"][0], page["rooms"][2]
    assert alpha == {
        "room_id": rooms["Alpha"],
        "name": "Alpha",
        "canonical_alias": "#alpha:localhost",
        "joined_members": 3,
        "joined_local_members": 3,
        "version": "11",
        "creator": owner.user_id,
        "encryption": None,
        "federatable": True,
        "public": True,
        "join_rules": "public",
        "guest_access": alpha["guest_access"],
        "history_visibility": "shared",
        "state_events": alpha["state_events"],
        "room_type": None,
    }
    assert alpha["state_events"] >= 6
    assert (beta["encryption"], beta["public"], beta["join_rules"]) == (
        "m.megolm.v1.aes-sha2",
        False,
        "invite",
    )


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("?order_by=joined_members", ["Alpha", "Gamma", "beta"]),
        ("?order_by=size&dir=b", ["beta", "Gamma", "Alpha"]),
        ("?dir=b", ["beta", "Gamma", "Alpha"]),
        ("?search_term=AMM", ["Gamma"]),  # in the name, whatever the case
        ("?search_term=alph", ["Alpha"]),
        ("?public_rooms=true", ["Alpha"]),
        ("?public_rooms=false", ["Gamma", "beta"]),
        ("?empty_rooms=false", ["Alpha", "Gamma", "beta"]),
        ("?empty_rooms=true", []),
    ],
)
async def test_rooms_are_searched_filtered_and_ordered(
    start_app: AppFactory, fresh_dsn: str, query: str, names: list[str]
) -> None:
    server = await start_with_admin(start_app, fresh_dsn)
    await three_rooms(server)
    page = await rooms_page(server, query)
    assert [room["name"] for room in page["rooms"]] == names
    assert page["total_rooms"] == len(names)


async def test_rooms_are_paged_by_offset(start_app: AppFactory, fresh_dsn: str) -> None:
    server = await start_with_admin(start_app, fresh_dsn)
    _, rooms = await three_rooms(server)
    first = await rooms_page(server, "?limit=2")
    assert [r["name"] for r in first["rooms"]] == ["Alpha", "Gamma"]
    assert (first["next_batch"], first["total_rooms"]) == (2, 3)
    second = await rooms_page(server, f"?limit=2&from={first['next_batch']}")
    assert [r["name"] for r in second["rooms"]] == ["beta"]
    assert "next_batch" not in second and second["prev_batch"] == 0
    room_id = rooms["beta"]
    found = await rooms_page(server, f"?search_term={room_id[1:6]}")
    assert room_id in [r["room_id"] for r in found["rooms"]]


@pytest.mark.parametrize(
    "query", ["?order_by=colour", "?dir=up", "?from=-1", "?limit=x", "?search_term="]
)
async def test_bad_room_list_queries_are_refused(start_app: AppFactory, query: str) -> None:
    server = await start_with_admin(start_app)
    reply = await server.hs.request("GET", f"{ADMIN}/rooms{query}", user=server.admin)
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM"), reply


async def test_a_rooms_details_members_and_state(start_app: AppFactory, fresh_dsn: str) -> None:
    server = await start_with_admin(start_app, fresh_dsn)
    hs, admin = server.hs, server.admin
    owner, rooms = await three_rooms(server)
    gamma = rooms["Gamma"]
    details = await hs.ok("GET", f"{ADMIN}/rooms/{gamma}", user=admin)
    listed = next(r for r in (await rooms_page(server))["rooms"] if r["room_id"] == gamma)
    assert {k: v for k, v in details.items() if k in listed} == listed
    assert (details["topic"], details["avatar"], details["forgotten"]) == (
        "about gamma",
        None,
        False,
    )
    assert details["joined_local_devices"] == 2

    members = await hs.ok("GET", f"{ADMIN}/rooms/{gamma}/members", user=admin)
    assert members == {"members": sorted(members["members"]), "total": 2}
    assert set(members["members"]) >= {owner.user_id}

    state = (await hs.ok("GET", f"{ADMIN}/rooms/{gamma}/state", user=admin))["state"]
    assert {(e["type"], e["state_key"]) for e in state} >= {
        ("m.room.create", ""),
        ("m.room.name", ""),
        ("m.room.member", owner.user_id),
    }
    names = await hs.ok("GET", f"{ADMIN}/rooms/{gamma}/state?type=m.room.name", user=admin)
    assert [e["content"] for e in names["state"]] == [{"name": "Gamma"}]

    for path in ("", "/members", "/state"):
        reply = await hs.request("GET", f"{ADMIN}/rooms/!nowhere:localhost{path}", user=admin)
        assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND"), path


async def test_a_room_everyone_forgot_says_so(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, user = server.hs, server.user
    room = await hs.create_room(user)
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=user)
    await hs.ok("POST", f"rooms/{room}/forget", {}, user=user)
    details = await hs.ok("GET", f"{ADMIN}/rooms/{room}", user=server.admin)
    assert (details["forgotten"], details["joined_members"]) == (True, 0)


async def test_rooms_are_for_admins_only(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, user = server.hs, server.user
    room = await hs.create_room(user)
    for path in ("/rooms", f"/rooms/{room}", f"/rooms/{room}/members", f"/rooms/{room}/state"):
        await assert_admins_only(hs, user, "GET", ADMIN + path)


async def public_room_ids(hs: MatrixClient, user: User) -> list[str]:
    body = await hs.ok("GET", "publicRooms", user=user)
    return [room["room_id"] for room in body["chunk"]]


async def test_a_blocked_room_can_be_entered_by_nobody_and_leaves_the_directory(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    server = await start_with_admin(start_app, fresh_dsn)
    hs, admin = server.hs, server.admin
    owner, stranger, friend = await hs.register(), await hs.register(), await hs.register()
    room = await hs.create_room(owner, preset="public_chat", visibility="public", name="Spam")
    block = f"{ADMIN}/rooms/{room}/block"
    assert await hs.ok("GET", block, user=admin) == {"block": False}
    assert room in await public_room_ids(hs, stranger)

    assert await hs.ok("PUT", block, {"block": True, "reason": "spam"}, user=admin) == {
        "block": True
    }
    assert await hs.ok("GET", block, user=admin) == {"block": True, "user_id": admin.user_id}
    refused = await hs.request("POST", f"join/{room}", {}, user=stranger)
    assert (refused.status, refused.errcode) == (403, "M_FORBIDDEN"), refused
    invite = {"user_id": friend.user_id}
    refused = await hs.request("POST", f"rooms/{room}/invite", invite, user=owner)
    assert (refused.status, refused.errcode) == (403, "M_FORBIDDEN"), refused
    assert room not in await public_room_ids(hs, stranger)
    # Those inside stay, speak, and change their profile (a join of theirs again).
    await hs.send(owner, room)
    await hs.ok("PUT", f"profile/{owner.user_id}/displayname", {"displayname": "O"}, user=owner)

    await hs.ok("PUT", block, {"block": False}, user=admin)
    assert await hs.ok("GET", block, user=admin) == {"block": False}
    await hs.join(stranger, room)
    assert room in await public_room_ids(hs, stranger)

    trail = await hs.ok("GET", "/_linkchat/v1/admin/audit?action=room.block", user=admin)
    assert [(a["target"], a["details"]) for a in trail["actions"]] == [
        (room, {"block": False}),
        (room, {"block": True}),
    ]
    await assert_replay_identical(fresh_dsn)


async def test_a_room_is_blocked_before_it_is_known(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    block = f"{ADMIN}/rooms/!not_yet:localhost/block"
    await server.hs.ok("PUT", block, {"block": True}, user=server.admin)
    assert (await server.hs.ok("GET", block, user=server.admin))["block"] is True
    # Twice is once.
    await server.hs.ok("PUT", block, {"block": True}, user=server.admin)
    trail = await server.hs.ok(
        "GET", "/_linkchat/v1/admin/audit?target=!not_yet:localhost", user=server.admin
    )
    assert len(trail["actions"]) == 1


@pytest.mark.parametrize("body", [{}, {"block": "yes"}, {"block": 1}])
async def test_a_block_needs_a_boolean(start_app: AppFactory, body: dict[str, Any]) -> None:
    server = await start_with_admin(start_app)
    reply = await server.hs.request(
        "PUT", f"{ADMIN}/rooms/!r:localhost/block", body, user=server.admin
    )
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON"), reply


async def test_blocks_are_for_admins_only(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    path = f"{ADMIN}/rooms/!r:localhost/block"
    await assert_admins_only(server.hs, server.user, "GET", path)
    await assert_admins_only(server.hs, server.user, "PUT", path, {"block": True})


async def test_make_room_admin_gives_the_rooms_highest_level_and_invites_if_needed(
    start_app: AppFactory,
) -> None:
    server = await start_with_admin(start_app)
    hs, admin = server.hs, server.admin
    owner, bob = await hs.register(), await hs.register()
    private = await hs.create_room(owner, name="Private")
    path = f"{ADMIN}/rooms/{private}/make_room_admin"
    assert await hs.ok("POST", path, {}, user=admin) == {}
    power = await hs.ok(
        "GET", f"rooms/{private}/state/m.room.power_levels/?format=event", user=owner
    )
    assert power["sender"] == owner.user_id
    assert power["content"]["users"][admin.user_id] == 100
    # Not in the private room: invited, and then in it as its admin.
    await hs.join(admin, private)
    await hs.ok("PUT", f"rooms/{private}/state/m.room.topic/", {"topic": "mine"}, user=admin)

    public = await hs.create_room(
        owner, preset="public_chat", room_alias_name=f"pub{secrets.token_hex(3)}"
    )
    alias = (await hs.ok("GET", f"rooms/{public}/state/m.room.canonical_alias/", user=owner))[
        "alias"
    ]
    await hs.ok(
        "POST",
        f"{ADMIN}/rooms/{quote(alias)}/make_room_admin",
        {"user_id": bob.user_id},
        user=admin,
    )
    levels = await hs.ok("GET", f"rooms/{public}/state/m.room.power_levels/", user=owner)
    assert levels["users"][bob.user_id] == 100
    # A public room is not an invite: bob joins himself.
    members = await hs.ok("GET", f"{ADMIN}/rooms/{public}/members", user=admin)
    assert bob.user_id not in members["members"]
    trail = await hs.ok("GET", "/_linkchat/v1/admin/audit?action=room.make_admin", user=admin)
    assert [(a["target"], a["details"]["user_id"]) for a in trail["actions"]] == [
        (public, bob.user_id),
        (private, admin.user_id),
    ]


async def test_make_room_admin_needs_a_local_user_and_a_local_admin_in_the_room(
    start_app: AppFactory,
) -> None:
    server = await start_with_admin(start_app)
    hs, admin = server.hs, server.admin
    owner = await hs.register()
    room = await hs.create_room(owner)
    path = f"{ADMIN}/rooms/{room}/make_room_admin"
    reply = await hs.request("POST", path, {"user_id": "@x:elsewhere.example"}, user=admin)
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=owner)
    reply = await hs.request("POST", path, {}, user=admin)
    assert reply.status == 400, reply
    reply = await hs.request(
        "POST", f"{ADMIN}/rooms/!nowhere:localhost/make_room_admin", {}, user=admin
    )
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")


async def test_make_room_admin_is_for_admins_only(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    room = await server.hs.create_room(server.user)
    path = f"{ADMIN}/rooms/{room}/make_room_admin"
    await assert_admins_only(server.hs, server.user, "POST", path, {})


async def test_a_room_has_one_forward_extremity_its_latest_event(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, admin = server.hs, server.admin
    room = await hs.create_room(server.user)
    last = await hs.send(server.user, room)
    path = f"{ADMIN}/rooms/{room}/forward_extremities"
    found = await hs.ok("GET", path, user=admin)
    assert found["count"] == 1 and found["results"][0]["event_id"] == last
    assert await hs.ok("DELETE", path, user=admin) == {"deleted": 0}
    nowhere = await hs.request(
        "GET", f"{ADMIN}/rooms/!nowhere:localhost/forward_extremities", user=admin
    )
    assert (nowhere.status, nowhere.errcode) == (404, "M_NOT_FOUND")
    for method in ("GET", "DELETE"):
        await assert_admins_only(hs, server.user, method, path)
