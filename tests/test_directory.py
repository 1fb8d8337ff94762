"""Room aliases: the directory endpoints, a room's alias list, and m.room.canonical_alias."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

from tests.conftest import AppFactory
from tests.matrix import MatrixClient, Reply, User


def _new_alias(server: str = "localhost") -> str:
    return f"#alias_{secrets.token_hex(5)}:{server}"


def _path(alias: str) -> str:
    return "directory/room/" + quote(alias, safe="")


async def _put(hs: MatrixClient, user: User, alias: str, room_id: str) -> Reply:
    return await hs.request("PUT", _path(alias), {"room_id": room_id}, user=user)


async def _set_canonical(hs: MatrixClient, user: User, room: str, content: Any) -> Reply:
    return await hs.request(
        "PUT", f"rooms/{room}/state/m.room.canonical_alias/", content, user=user
    )


# Creating and resolving


async def test_created_alias_resolves_to_its_room(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    alias = _new_alias()
    assert (await _put(hs, alice, alias, room)).status == 200
    resolved = await hs.ok("GET", _path(alias))
    assert resolved == {"room_id": room, "servers": ["localhost"]}


async def test_anyone_can_resolve_an_alias_without_logging_in(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    alias = _new_alias()
    await _put(hs, alice, alias, room)
    reply = await hs.request("GET", _path(alias))
    assert reply.status == 200
    assert reply.body["room_id"] == room


async def test_alias_already_taken_is_a_conflict(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    first = await hs.create_room(alice)
    second = await hs.create_room(bob)
    alias = _new_alias()
    await _put(hs, alice, alias, first)
    reply = await _put(hs, bob, alias, second)
    assert reply.status == 409
    assert reply.errcode == "M_UNKNOWN"
    assert (await hs.ok("GET", _path(alias)))["room_id"] == first


async def test_unknown_alias_is_not_found(hs: MatrixClient) -> None:
    reply = await hs.request("GET", _path(_new_alias()))
    assert reply.status == 404
    assert reply.errcode == "M_NOT_FOUND"


async def test_alias_on_another_server_cannot_be_created(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    reply = await _put(hs, alice, _new_alias("elsewhere.example"), room)
    assert reply.status == 400
    assert reply.errcode == "M_INVALID_PARAM"


async def test_malformed_alias_is_refused(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    for bad in ("no_hash:localhost", "#no_server", "#:localhost", "#has space:localhost"):
        reply = await _put(hs, alice, bad, room)
        assert reply.status == 400, bad
        assert reply.errcode == "M_INVALID_PARAM", bad
    lookup = await hs.request("GET", _path("#no_server"))
    assert lookup.status == 400
    assert lookup.errcode == "M_INVALID_PARAM"


async def test_alias_for_an_unknown_room_is_not_found(hs: MatrixClient) -> None:
    alice = await hs.register()
    alias = _new_alias()
    reply = await _put(hs, alice, alias, "!nosuchroom:localhost")
    assert reply.status == 404
    assert reply.errcode == "M_NOT_FOUND"
    assert (await hs.request("GET", _path(alias))).status == 404


async def test_creating_an_alias_needs_an_access_token(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    reply = await hs.request("PUT", _path(_new_alias()), {"room_id": room})
    assert reply.status == 401
    assert reply.errcode == "M_MISSING_TOKEN"


async def test_outsider_cannot_point_an_alias_at_a_private_room(hs: MatrixClient) -> None:
    alice, mallory = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="private_chat")
    alias = _new_alias()
    reply = await _put(hs, mallory, alias, room)
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"
    assert (await hs.request("GET", _path(alias))).status == 404


async def test_invited_or_departed_user_cannot_create_an_alias_for_the_room(
    hs: MatrixClient,
) -> None:
    alice, bob, carol = await hs.register(), await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="private_chat", invite=[bob.user_id])
    await hs.ok("POST", f"rooms/{room}/invite", {"user_id": carol.user_id}, user=alice)
    await hs.join(carol, room)
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=carol)
    for user in (bob, carol):
        reply = await _put(hs, user, _new_alias(), room)
        assert reply.status == 403, user.user_id
        assert reply.errcode == "M_FORBIDDEN"


async def test_joined_member_can_create_an_alias_for_the_room(hs: MatrixClient) -> None:
    _, bob, room = await hs.room_of_two()
    alias = _new_alias()
    assert (await _put(hs, bob, alias, room)).status == 200
    assert (await hs.ok("GET", _path(alias)))["room_id"] == room


async def test_server_admin_can_create_an_alias_for_a_room_they_are_not_in(
    start_app: AppFactory,
) -> None:
    localpart = f"op_{secrets.token_hex(4)}"
    hs = await start_app(admins=[f"@{localpart}:localhost"])
    alice, admin = await hs.register(), await hs.register(localpart)
    room = await hs.create_room(alice, preset="private_chat")
    alias = _new_alias()
    assert (await _put(hs, admin, alias, room)).status == 200
    assert (await hs.ok("GET", _path(alias)))["room_id"] == room


# Deleting


async def test_creator_can_delete_their_alias(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    alias = _new_alias()
    await _put(hs, alice, alias, room)
    assert (await hs.request("DELETE", _path(alias), user=alice)).status == 200
    gone = await hs.request("GET", _path(alias))
    assert gone.status == 404
    assert gone.errcode == "M_NOT_FOUND"


async def test_deleted_alias_can_be_taken_again(hs: MatrixClient) -> None:
    alice = await hs.register()
    first, second = await hs.create_room(alice), await hs.create_room(alice)
    alias = _new_alias()
    await _put(hs, alice, alias, first)
    await hs.ok("DELETE", _path(alias), user=alice)
    assert (await _put(hs, alice, alias, second)).status == 200
    assert (await hs.ok("GET", _path(alias)))["room_id"] == second


async def test_stranger_cannot_delete_an_alias(hs: MatrixClient) -> None:
    alice, mallory = await hs.register(), await hs.register()
    room = await hs.create_room(alice)
    alias = _new_alias()
    await _put(hs, alice, alias, room)
    reply = await hs.request("DELETE", _path(alias), user=mallory)
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"
    assert (await hs.ok("GET", _path(alias)))["room_id"] == room


async def test_member_without_power_cannot_delete_someone_elses_alias(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    alias = _new_alias()
    await _put(hs, alice, alias, room)
    reply = await hs.request("DELETE", _path(alias), user=bob)
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"


async def test_member_with_canonical_alias_power_can_delete_an_alias(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    alias = _new_alias()
    await _put(hs, alice, alias, room)
    await hs.set_level(alice, room, bob, 50)
    assert (await hs.request("DELETE", _path(alias), user=bob)).status == 200
    assert (await hs.request("GET", _path(alias))).status == 404


async def test_deleting_an_unknown_alias_is_not_found(hs: MatrixClient) -> None:
    alice = await hs.register()
    reply = await hs.request("DELETE", _path(_new_alias()), user=alice)
    assert reply.status == 404
    assert reply.errcode == "M_NOT_FOUND"


# A room's aliases


async def test_room_lists_its_local_aliases(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    first, second = _new_alias(), _new_alias()
    await _put(hs, alice, first, room)
    await _put(hs, bob, second, room)
    body = await hs.ok("GET", f"rooms/{room}/aliases", user=bob)
    assert sorted(body["aliases"]) == sorted([first, second])
    await hs.ok("DELETE", _path(first), user=alice)
    body = await hs.ok("GET", f"rooms/{room}/aliases", user=bob)
    assert body["aliases"] == [second]


async def test_room_without_aliases_lists_none(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    assert (await hs.ok("GET", f"rooms/{room}/aliases", user=alice)) == {"aliases": []}


async def test_stranger_cannot_list_a_rooms_aliases(hs: MatrixClient) -> None:
    alice, mallory = await hs.register(), await hs.register()
    room = await hs.create_room(alice)
    await _put(hs, alice, _new_alias(), room)
    reply = await hs.request("GET", f"rooms/{room}/aliases", user=mallory)
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"


# m.room.canonical_alias


async def test_canonical_alias_can_name_an_alias_of_the_room(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    main, alt = _new_alias(), _new_alias()
    await _put(hs, alice, main, room)
    await _put(hs, alice, alt, room)
    content = {"alias": main, "alt_aliases": [alt]}
    assert (await _set_canonical(hs, alice, room, content)).status == 200
    served = await hs.ok("GET", f"rooms/{room}/state/m.room.canonical_alias/", user=alice)
    assert served == content


async def test_canonical_alias_of_another_room_is_refused(hs: MatrixClient) -> None:
    alice = await hs.register()
    room, other = await hs.create_room(alice), await hs.create_room(alice)
    alias = _new_alias()
    await _put(hs, alice, alias, other)
    reply = await _set_canonical(hs, alice, room, {"alias": alias})
    assert reply.status == 400
    assert reply.errcode == "M_BAD_ALIAS"
    missing = await hs.request("GET", f"rooms/{room}/state/m.room.canonical_alias/", user=alice)
    assert missing.status == 404


async def test_canonical_alt_alias_of_another_room_is_refused(hs: MatrixClient) -> None:
    alice = await hs.register()
    room, other = await hs.create_room(alice), await hs.create_room(alice)
    mine, theirs = _new_alias(), _new_alias()
    await _put(hs, alice, mine, room)
    await _put(hs, alice, theirs, other)
    reply = await _set_canonical(hs, alice, room, {"alias": mine, "alt_aliases": [theirs]})
    assert reply.status == 400
    assert reply.errcode == "M_BAD_ALIAS"


async def test_canonical_alias_that_does_not_exist_is_refused(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    reply = await _set_canonical(hs, alice, room, {"alias": _new_alias()})
    assert reply.status == 400
    assert reply.errcode == "M_BAD_ALIAS"


async def test_canonical_alias_with_bad_syntax_is_an_invalid_param(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    reply = await _set_canonical(hs, alice, room, {"alias": "not an alias"})
    assert reply.status == 400
    assert reply.errcode == "M_INVALID_PARAM"


async def test_canonical_alias_can_be_cleared(hs: MatrixClient) -> None:
    alice = await hs.register()
    name = "canon_" + secrets.token_hex(4)
    room = await hs.create_room(alice, room_alias_name=name)
    assert (await _set_canonical(hs, alice, room, {})).status == 200
    served = await hs.ok("GET", f"rooms/{room}/state/m.room.canonical_alias/", user=alice)
    assert served == {}


async def test_alt_alias_can_be_added_after_the_main_alias_was_deleted(hs: MatrixClient) -> None:
    # The spec: servers do not validate aliases already present in the event. Bob's
    # alias stays canonical when he deletes it: he may not change the canonical alias.
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    main = _new_alias()
    await _put(hs, bob, main, room)
    assert (await _set_canonical(hs, alice, room, {"alias": main})).status == 200
    await hs.ok("DELETE", _path(main), user=bob)
    served = await hs.ok("GET", f"rooms/{room}/state/m.room.canonical_alias/", user=alice)
    assert served == {"alias": main}
    alt = _new_alias()
    await _put(hs, alice, alt, room)
    reply = await _set_canonical(hs, alice, room, {"alias": main, "alt_aliases": [alt]})
    assert reply.status == 200


async def test_deleting_the_canonical_alias_removes_it_from_the_room(hs: MatrixClient) -> None:
    # As Synapse: the deleted alias leaves m.room.canonical_alias (alias and alt_aliases).
    alice = await hs.register()
    name = "canon_" + secrets.token_hex(4)
    room = await hs.create_room(alice, room_alias_name=name)
    main, alt = f"#{name}:localhost", _new_alias()
    await _put(hs, alice, alt, room)
    await _set_canonical(hs, alice, room, {"alias": main, "alt_aliases": [alt]})
    since = (await hs.sync(alice))["next_batch"]
    await hs.ok("DELETE", _path(main), user=alice)
    path = f"rooms/{room}/state/m.room.canonical_alias/"
    assert await hs.ok("GET", path, user=alice) == {"alt_aliases": [alt]}
    await hs.ok("DELETE", _path(alt), user=alice)
    assert await hs.ok("GET", path, user=alice) == {}
    timeline = (await hs.sync(alice, since=since))["rooms"]["join"][room]["timeline"]
    changes = [e["content"] for e in timeline["events"] if e["type"] == "m.room.canonical_alias"]
    assert changes == [{"alt_aliases": [alt]}, {}]


async def test_room_admin_may_delete_the_canonical_alias_someone_else_made(
    hs: MatrixClient,
) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    await hs.set_level(alice, room, bob, 50)
    alias = _new_alias()
    await _put(hs, bob, alias, room)
    await _set_canonical(hs, bob, room, {"alias": alias})
    assert (await hs.request("DELETE", _path(alias), user=alice)).status == 200
    assert (await hs.request("GET", _path(alias))).status == 404
    path = f"rooms/{room}/state/m.room.canonical_alias/"
    assert await hs.ok("GET", path, user=bob) == {}
