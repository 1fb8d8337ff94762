"""Named roles over power levels: reading them, setting them, and who may."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema
import pytest

from homeserver.api.app_keys import APPENDER
from homeserver.config import check_config
from homeserver.errors import MatrixError
from homeserver.events.model import STATE_CHANGED, StateEdit
from tests.matrix import MatrixClient, Reply, User

CHANNEL = {"type": "com.linkchat.channel"}
SCHEMA = json.loads(
    (Path(__file__).resolve().parent.parent / "spec" / "roles.schema.json").read_text()
)


def _check(value: Any, definition: str) -> None:
    jsonschema.validate(value, {**SCHEMA, "$ref": f"#/$defs/{definition}"})


def _roles_path(room: str, user_id: str | None = None) -> str:
    path = f"/_linkchat/v1/rooms/{quote(room)}/roles"
    return path if user_id is None else f"{path}/{quote(user_id)}"


async def _set_role(hs: MatrixClient, sender: User, room: str, target: str, role: Any) -> Reply:
    return await hs.request("PUT", _roles_path(room, target), {"role": role}, user=sender)


async def _roles(hs: MatrixClient, user: User, room: str) -> dict[str, str | None]:
    body: dict[str, str | None] = await hs.ok("GET", _roles_path(room), user=user)
    return body


async def _levels(hs: MatrixClient, user: User, room: str) -> dict[str, Any]:
    body: dict[str, Any] = await hs.ok("GET", f"rooms/{room}/state/m.room.power_levels/", user=user)
    return body


async def _group(hs: MatrixClient, size: int) -> tuple[str, list[User]]:
    """A public group made by its first user, joined by the others."""
    users = [await hs.register() for _ in range(size)]
    room = await hs.create_room(users[0], preset="public_chat")
    for user in users[1:]:
        await hs.join(user, room)
    return room, users


async def test_roles_list_the_creator_as_owner_and_everyone_else_as_member(
    hs: MatrixClient,
) -> None:
    room, (alice, bob) = await _group(hs, 2)
    assert await _roles(hs, bob, room) == {alice.user_id: "owner", bob.user_id: "member"}


async def test_owner_makes_a_member_moderator_and_every_member_sees_it(
    hs: MatrixClient,
) -> None:
    room, (alice, bob, carol) = await _group(hs, 3)
    reply = await _set_role(hs, alice, room, bob.user_id, "moderator")
    assert reply.status == 200, reply.body
    assert reply.body["event_id"].startswith("$")
    assert (await _roles(hs, carol, room))[bob.user_id] == "moderator"
    assert (await _levels(hs, carol, room))["users"][bob.user_id] == 50


async def test_a_level_set_by_a_plain_matrix_client_shows_as_the_role_below_it(
    hs: MatrixClient,
) -> None:
    room, (alice, bob) = await _group(hs, 2)
    levels = await _levels(hs, alice, room)
    levels["users"][bob.user_id] = 80
    await hs.ok("PUT", f"rooms/{room}/state/m.room.power_levels/", levels, user=alice)
    assert (await _roles(hs, alice, room))[bob.user_id] == "admin"


async def test_a_user_below_the_member_level_has_no_role(hs: MatrixClient) -> None:
    room, (alice, bob) = await _group(hs, 2)
    levels = await _levels(hs, alice, room)
    levels["users"][bob.user_id] = -1
    await hs.ok("PUT", f"rooms/{room}/state/m.room.power_levels/", levels, user=alice)
    assert (await _roles(hs, alice, room))[bob.user_id] is None


async def test_invitees_are_listed_with_their_role(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, invite=[bob.user_id])
    assert (await _set_role(hs, alice, room, bob.user_id, "admin")).status == 200
    assert await _roles(hs, alice, room) == {alice.user_id: "owner", bob.user_id: "admin"}


async def test_giving_back_the_member_role_removes_the_user_from_power_levels(
    hs: MatrixClient,
) -> None:
    room, (alice, bob) = await _group(hs, 2)
    assert (await _set_role(hs, alice, room, bob.user_id, "admin")).status == 200
    assert (await _set_role(hs, alice, room, bob.user_id, "member")).status == 200
    assert bob.user_id not in (await _levels(hs, alice, room))["users"]
    assert (await _roles(hs, alice, room))[bob.user_id] == "member"


async def test_roles_levels_come_from_the_config(start_app: Any) -> None:
    hs = await start_app(roles={"owner": 100, "admin": 90, "moderator": 40, "member": 0})
    room, (alice, bob) = await _group(hs, 2)
    assert (await _set_role(hs, alice, room, bob.user_id, "moderator")).status == 200
    assert (await _levels(hs, alice, room))["users"][bob.user_id] == 40


# Refusals


@pytest.mark.parametrize("role", ["superuser", "Owner", ""])
async def test_an_unknown_role_is_an_invalid_param(hs: MatrixClient, role: str) -> None:
    room, (alice, bob) = await _group(hs, 2)
    reply = await _set_role(hs, alice, room, bob.user_id, role)
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")


async def test_a_body_without_a_role_string_is_bad_json(hs: MatrixClient) -> None:
    room, (alice, bob) = await _group(hs, 2)
    for body in ({}, {"role": 5}):
        reply = await hs.request("PUT", _roles_path(room, bob.user_id), body, user=alice)
        assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")


async def test_a_moderator_may_not_give_roles_in_a_group(hs: MatrixClient) -> None:
    room, (alice, bob, carol) = await _group(hs, 3)
    assert (await _set_role(hs, alice, room, bob.user_id, "moderator")).status == 200
    reply = await _set_role(hs, bob, room, carol.user_id, "moderator")
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    assert (await _roles(hs, alice, room))[carol.user_id] == "member"


async def test_a_member_may_not_make_themselves_owner(hs: MatrixClient) -> None:
    room, (_alice, bob) = await _group(hs, 2)
    reply = await _set_role(hs, bob, room, bob.user_id, "owner")
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")


async def test_a_channel_admin_may_appoint_moderators_but_not_owners_or_demote_admins(
    hs: MatrixClient,
) -> None:
    alice, bob, carol, dave = [await hs.register() for _ in range(4)]
    room = await hs.create_room(alice, preset="public_chat", creation_content=CHANNEL)
    for user in (bob, carol, dave):
        await hs.join(user, room)
    assert (await _set_role(hs, alice, room, bob.user_id, "admin")).status == 200
    assert (await _set_role(hs, alice, room, dave.user_id, "admin")).status == 200
    # An admin may give roles up to their own...
    assert (await _set_role(hs, bob, room, carol.user_id, "moderator")).status == 200
    # ...but not raise anyone above it, nor change someone at their level or above.
    for target, role in ((carol.user_id, "owner"), (dave.user_id, "member")):
        reply = await _set_role(hs, bob, room, target, role)
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN"), (target, role)
    reply = await _set_role(hs, bob, room, alice.user_id, "member")
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    roles = await _roles(hs, alice, room)
    assert (roles[alice.user_id], roles[carol.user_id], roles[dave.user_id]) == (
        "owner",
        "moderator",
        "admin",
    )


async def test_someone_not_in_the_room_may_neither_read_nor_set_roles(hs: MatrixClient) -> None:
    room, (alice, _bob) = await _group(hs, 2)
    outsider = await hs.register()
    reply = await hs.request("GET", _roles_path(room), user=outsider)
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    reply = await _set_role(hs, outsider, room, outsider.user_id, "owner")
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    assert outsider.user_id not in await _roles(hs, alice, room)


async def test_roles_of_an_unknown_room_are_not_found(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = "!nosuchroom:localhost"
    reply = await hs.request("GET", _roles_path(room), user=alice)
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    reply = await _set_role(hs, alice, room, alice.user_id, "member")
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")


async def test_a_role_for_a_user_who_does_not_exist_or_is_malformed_is_refused(
    hs: MatrixClient,
) -> None:
    room, (alice, _bob) = await _group(hs, 2)
    reply = await _set_role(hs, alice, room, "@nobody_here:localhost", "admin")
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    reply = await _set_role(hs, alice, room, "not-a-user", "admin")
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")


async def test_roles_need_an_access_token(hs: MatrixClient) -> None:
    room, _ = await _group(hs, 1)
    reply = await hs.request("GET", _roles_path(room))
    assert (reply.status, reply.errcode) == (401, "M_MISSING_TOKEN")


# Concurrency: a role change is a read-modify-write of the power levels.


async def test_concurrent_role_changes_for_different_users_all_survive(hs: MatrixClient) -> None:
    room, users = await _group(hs, 7)
    owner, others = users[0], users[1:]
    wanted = ["admin", "moderator", "admin", "moderator", "admin", "moderator"]
    replies = await asyncio.gather(
        *(
            _set_role(hs, owner, room, user.user_id, role)
            for user, role in zip(others, wanted, strict=True)
        )
    )
    assert [reply.status for reply in replies] == [200] * len(others), replies
    roles = await _roles(hs, owner, room)
    assert [roles[user.user_id] for user in others] == wanted


async def test_two_concurrent_role_changes_both_survive(hs: MatrixClient) -> None:
    room, (alice, bob, carol) = await _group(hs, 3)
    first, second = await asyncio.gather(
        _set_role(hs, alice, room, bob.user_id, "admin"),
        _set_role(hs, alice, room, carol.user_id, "moderator"),
    )
    assert (first.status, second.status) == (200, 200), (first.body, second.body)
    users = (await _levels(hs, alice, room))["users"]
    assert (users[bob.user_id], users[carol.user_id]) == (75, 50)


async def test_an_edit_computed_from_replaced_power_levels_is_refused(hs: MatrixClient) -> None:
    # What makes the above safe: the edit names the state it was computed from,
    # and the append refuses it once another event has replaced that state.
    room, (alice, bob) = await _group(hs, 2)
    before = await hs.ok("GET", f"rooms/{room}/state/m.room.power_levels/?format=event", user=alice)
    assert (await _set_role(hs, alice, room, bob.user_id, "admin")).status == 200
    stale = dict(before["content"])
    stale["users"] = {**stale["users"], "@someone:localhost": 10}
    draft = StateEdit(
        room, alice.user_id, "m.room.power_levels", stale, state_key="", replaces=before["event_id"]
    )
    with pytest.raises(MatrixError) as refused:
        await hs.app[APPENDER].append(draft)
    assert (refused.value.status, refused.value.errcode) == (409, STATE_CHANGED)
    assert (await _roles(hs, alice, room))[bob.user_id] == "admin"


async def test_requests_and_responses_match_the_spec_schemas(hs: MatrixClient) -> None:
    room, (alice, bob) = await _group(hs, 2)
    request = {"role": "admin"}
    _check(request, "set_role_request")
    reply = await hs.request("PUT", _roles_path(room, bob.user_id), request, user=alice)
    _check(reply.body, "set_role_response")
    _check(await _roles(hs, alice, room), "roles_response")
    with pytest.raises(jsonschema.ValidationError):
        _check({"role": "emperor"}, "set_role_request")


def test_role_levels_in_the_config_must_be_strictly_ordered(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("roles:\n  admin: 50\n  moderator: 50\n")
    assert check_config(path, {}) == [
        f"{path}: roles: levels must be strictly ordered: owner > admin > moderator > member"
        " (got 100, 50, 50, 0)"
    ]
    path.write_text("roles:\n  owner: 150\n  member: 1\n")
    assert check_config(path, {}) == [
        f"{path}: roles.owner: must be at most 100",
        f"{path}: roles.member: must be at most 0",
    ]


async def test_version_12_creators_are_owners_though_the_levels_do_not_name_them(
    hs: MatrixClient,
) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, room_version="12", preset="public_chat")
    await hs.join(bob, room)
    assert alice.user_id not in (await _levels(hs, alice, room))["users"]
    assert await _roles(hs, bob, room) == {alice.user_id: "owner", bob.user_id: "member"}
    reply = await _set_role(hs, alice, room, bob.user_id, "admin")
    assert reply.status == 200, reply.body
    assert (await _roles(hs, bob, room))[bob.user_id] == "admin"
