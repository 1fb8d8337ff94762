"""Spec: "Rooms" (POST /createRoom, room aliases / directory), "Room membership"
(join, invite, leave, forget, kick, ban, unban), "Getting events for a room"
(state, members, joined_members, joined_rooms) and room state PUT."""

from __future__ import annotations

import asyncio
import secrets

from sytest_lite.client import Api, Registered, assert_error, q


def _alias(name: str) -> str:
    return f"#{name}:localhost"


def _alias_name() -> str:
    return f"room{secrets.token_hex(5)}"


async def _public_room_with(api: Api, owner: Registered, *members: Registered) -> str:
    room_id = await api.create_room(owner.access_token, preset="public_chat")
    for member in members:
        await api.join_ok(member.access_token, room_id)
    return room_id


async def _membership(api: Api, viewer: Registered, room_id: str, user_id: str) -> str | None:
    status, body = await api.get_state(viewer.access_token, room_id, "m.room.member", user_id)
    if status == 404:
        return None
    assert status == 200, body
    return str(body["membership"])


# -- createRoom --------------------------------------------------------------


async def test_creator_is_joined_with_highest_power(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    assert room_id in await api.joined_rooms(alice.access_token)
    assert await _membership(api, alice, room_id, alice.user_id) == "join"
    create = await api.state_content(alice.access_token, room_id, "m.room.create")
    power = await api.state_content(alice.access_token, room_id, "m.room.power_levels")
    # From room version 12 creators are implicitly above every power level.
    if str(create.get("room_version")) != "12":
        assert power["users"][alice.user_id] == 100, power


async def test_private_chat_preset_is_invite_only_with_shared_history(
    api: Api, alice: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, preset="private_chat")
    join_rules = await api.state_content(alice.access_token, room_id, "m.room.join_rules")
    assert join_rules["join_rule"] == "invite", join_rules
    history = await api.state_content(alice.access_token, room_id, "m.room.history_visibility")
    assert history["history_visibility"] == "shared", history
    guest = await api.state_content(alice.access_token, room_id, "m.room.guest_access")
    assert guest["guest_access"] == "can_join", guest


async def test_public_chat_preset_is_public_and_forbids_guests(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token, preset="public_chat")
    join_rules = await api.state_content(alice.access_token, room_id, "m.room.join_rules")
    assert join_rules["join_rule"] == "public", join_rules
    history = await api.state_content(alice.access_token, room_id, "m.room.history_visibility")
    assert history["history_visibility"] == "shared", history
    status, guest = await api.get_state(alice.access_token, room_id, "m.room.guest_access")
    # guest_access "forbidden" may be explicit or left to its default (absent).
    assert status == 404 or guest["guest_access"] == "forbidden", (status, guest)


async def test_trusted_private_chat_gives_invitees_the_creators_power(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(
        alice.access_token, preset="trusted_private_chat", invite=[bob.user_id]
    )
    join_rules = await api.state_content(alice.access_token, room_id, "m.room.join_rules")
    assert join_rules["join_rule"] == "invite", join_rules
    power = await api.state_content(alice.access_token, room_id, "m.room.power_levels")
    create = await api.state_content(alice.access_token, room_id, "m.room.create")
    if str(create.get("room_version")) != "12":
        assert power["users"][bob.user_id] == power["users"][alice.user_id], power
    else:
        assert bob.user_id in create.get("additional_creators", []), create


async def test_public_visibility_without_preset_means_public_chat(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, visibility="public")
    join_rules = await api.state_content(alice.access_token, room_id, "m.room.join_rules")
    assert join_rules["join_rule"] == "public", join_rules
    await api.join_ok(bob.access_token, room_id)


async def test_no_preset_and_no_visibility_means_private_chat(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(alice.access_token)
    join_rules = await api.state_content(alice.access_token, room_id, "m.room.join_rules")
    assert join_rules["join_rule"] == "invite", join_rules
    status, body = await api.join(bob.access_token, room_id)
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_create_room_sets_name_and_topic(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token, name="Garden club", topic="Tomatoes")
    name = await api.state_content(alice.access_token, room_id, "m.room.name")
    assert name["name"] == "Garden club", name
    topic = await api.state_content(alice.access_token, room_id, "m.room.topic")
    assert topic["topic"] == "Tomatoes", topic


async def test_create_room_with_alias_publishes_it(api: Api, alice: Registered) -> None:
    name = _alias_name()
    room_id = await api.create_room(alice.access_token, room_alias_name=name)
    status, body = await api.request("GET", f"/directory/room/{q(_alias(name))}")
    assert status == 200, body
    assert body["room_id"] == room_id, body
    canonical = await api.state_content(alice.access_token, room_id, "m.room.canonical_alias")
    assert canonical["alias"] == _alias(name), canonical


async def test_create_room_with_taken_alias_is_room_in_use(api: Api, alice: Registered) -> None:
    name = _alias_name()
    await api.create_room(alice.access_token, room_alias_name=name)
    status, body = await api.request(
        "POST", "/createRoom", json={"room_alias_name": name}, token=alice.access_token
    )
    assert_error(status, body, 400, "M_ROOM_IN_USE")


async def test_create_room_invites_listed_users(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, invite=[bob.user_id])
    assert await _membership(api, alice, room_id, bob.user_id) == "invite"
    assert room_id not in await api.joined_rooms(bob.access_token)
    await api.join_ok(bob.access_token, room_id)
    assert room_id in await api.joined_rooms(bob.access_token)


async def test_create_room_applies_initial_state(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(
        alice.access_token,
        initial_state=[
            {"type": "com.linkchat.test.setting", "state_key": "colour", "content": {"v": "teal"}},
            {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}},
        ],
    )
    setting = await api.state_content(
        alice.access_token, room_id, "com.linkchat.test.setting", "colour"
    )
    assert setting == {"v": "teal"}, setting
    history = await api.state_content(alice.access_token, room_id, "m.room.history_visibility")
    assert history["history_visibility"] == "joined", history


async def test_create_room_applies_power_level_override(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(
        alice.access_token,
        power_level_content_override={"events_default": 20, "events": {"m.room.topic": 0}},
    )
    power = await api.state_content(alice.access_token, room_id, "m.room.power_levels")
    assert power["events_default"] == 20, power
    assert power["events"]["m.room.topic"] == 0, power


async def test_create_room_keeps_creation_content_type(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token, creation_content={"type": "m.space"})
    create = await api.state_content(alice.access_token, room_id, "m.room.create")
    assert create["type"] == "m.space", create


async def test_create_room_with_unsupported_version_is_rejected(
    api: Api, alice: Registered
) -> None:
    status, body = await api.request(
        "POST", "/createRoom", json={"room_version": "9999"}, token=alice.access_token
    )
    assert_error(status, body, 400, "M_UNSUPPORTED_ROOM_VERSION")


# -- joining -------------------------------------------------------------------


async def test_join_public_room_by_id(api: Api, alice: Registered, bob: Registered) -> None:
    room_id = await api.create_room(alice.access_token, preset="public_chat")
    status, body = await api.request(
        "POST", f"/rooms/{q(room_id)}/join", json={}, token=bob.access_token
    )
    assert status == 200, body
    assert body["room_id"] == room_id, body
    assert await _membership(api, alice, room_id, bob.user_id) == "join"


async def test_join_public_room_by_alias(api: Api, alice: Registered, bob: Registered) -> None:
    name = _alias_name()
    room_id = await api.create_room(alice.access_token, preset="public_chat", room_alias_name=name)
    assert await api.join_ok(bob.access_token, _alias(name)) == room_id
    assert room_id in await api.joined_rooms(bob.access_token)


async def test_joining_twice_is_harmless(api: Api, alice: Registered, bob: Registered) -> None:
    room_id = await _public_room_with(api, alice, bob)
    assert await api.join_ok(bob.access_token, room_id) == room_id


async def test_join_invite_only_room_without_invite_is_forbidden(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, preset="private_chat")
    status, body = await api.join(bob.access_token, room_id)
    assert_error(status, body, 403, "M_FORBIDDEN")
    assert room_id not in await api.joined_rooms(bob.access_token)


async def test_join_unknown_alias_is_a_client_error(api: Api, bob: Registered) -> None:
    status, body = await api.join(bob.access_token, _alias("nosuchroom" + secrets.token_hex(4)))
    assert 400 <= status < 500, (status, body)
    assert isinstance(body.get("errcode"), str), body


# -- inviting ------------------------------------------------------------------


async def test_invited_user_can_join_invite_only_room(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, preset="private_chat")
    await api.membership_action_ok(alice.access_token, room_id, "invite", bob.user_id)
    assert await _membership(api, alice, room_id, bob.user_id) == "invite"
    await api.join_ok(bob.access_token, room_id)
    assert await _membership(api, alice, room_id, bob.user_id) == "join"


async def test_reinviting_an_invited_user_succeeds(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, invite=[bob.user_id])
    status, body = await api.membership_action(alice.access_token, room_id, "invite", bob.user_id)
    assert status == 200, body


async def test_inviting_a_joined_member_is_forbidden(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await _public_room_with(api, alice, bob)
    status, body = await api.membership_action(alice.access_token, room_id, "invite", bob.user_id)
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_non_member_cannot_invite(
    api: Api, alice: Registered, bob: Registered, carol: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, preset="public_chat")
    status, body = await api.membership_action(bob.access_token, room_id, "invite", carol.user_id)
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_invitee_rejects_by_leaving(api: Api, alice: Registered, bob: Registered) -> None:
    room_id = await api.create_room(alice.access_token, invite=[bob.user_id])
    await api.membership_action_ok(bob.access_token, room_id, "leave")
    assert await _membership(api, alice, room_id, bob.user_id) == "leave"
    status, body = await api.join(bob.access_token, room_id)
    assert_error(status, body, 403, "M_FORBIDDEN")


# -- leaving and forgetting ------------------------------------------------------


async def test_leave_removes_room_from_joined_rooms(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await _public_room_with(api, alice, bob)
    await api.membership_action_ok(bob.access_token, room_id, "leave")
    assert room_id not in await api.joined_rooms(bob.access_token)
    assert await _membership(api, alice, room_id, bob.user_id) == "leave"


async def test_left_user_cannot_send(api: Api, alice: Registered, bob: Registered) -> None:
    room_id = await _public_room_with(api, alice, bob)
    await api.membership_action_ok(bob.access_token, room_id, "leave")
    status, body = await api.send(
        bob.access_token, room_id, "m.room.message", {"msgtype": "m.text", "body": "hi"}
    )
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_forget_while_joined_is_rejected(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    status, body = await api.membership_action(alice.access_token, room_id, "forget")
    assert_error(status, body, 400, "M_UNKNOWN")


async def test_forget_after_leaving_succeeds(api: Api, alice: Registered, bob: Registered) -> None:
    room_id = await _public_room_with(api, alice, bob)
    await api.membership_action_ok(bob.access_token, room_id, "leave")
    status, body = await api.membership_action(bob.access_token, room_id, "forget")
    assert status == 200, body
    assert room_id not in await api.joined_rooms(bob.access_token)


# -- kicking -------------------------------------------------------------------


async def test_kick_removes_member_with_reason(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await _public_room_with(api, alice, bob)
    status, body = await api.request(
        "POST",
        f"/rooms/{q(room_id)}/kick",
        json={"user_id": bob.user_id, "reason": "spamming"},
        token=alice.access_token,
    )
    assert status == 200, body
    member = await api.state_content(alice.access_token, room_id, "m.room.member", bob.user_id)
    assert member["membership"] == "leave", member
    assert member.get("reason") == "spamming", member
    assert room_id not in await api.joined_rooms(bob.access_token)


async def test_member_without_power_cannot_kick(
    api: Api, alice: Registered, bob: Registered, carol: Registered
) -> None:
    room_id = await _public_room_with(api, alice, bob, carol)
    status, body = await api.membership_action(carol.access_token, room_id, "kick", bob.user_id)
    assert_error(status, body, 403, "M_FORBIDDEN")
    assert await _membership(api, alice, room_id, bob.user_id) == "join"


async def test_kicked_user_can_rejoin_public_room(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await _public_room_with(api, alice, bob)
    await api.membership_action_ok(alice.access_token, room_id, "kick", bob.user_id)
    await api.join_ok(bob.access_token, room_id)


# -- banning -------------------------------------------------------------------


async def test_banned_user_cannot_rejoin(api: Api, alice: Registered, bob: Registered) -> None:
    room_id = await _public_room_with(api, alice, bob)
    await api.membership_action_ok(alice.access_token, room_id, "ban", bob.user_id)
    assert await _membership(api, alice, room_id, bob.user_id) == "ban"
    assert room_id not in await api.joined_rooms(bob.access_token)
    status, body = await api.join(bob.access_token, room_id)
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_banned_user_cannot_be_invited(api: Api, alice: Registered, bob: Registered) -> None:
    room_id = await api.create_room(alice.access_token, preset="private_chat")
    await api.membership_action_ok(alice.access_token, room_id, "ban", bob.user_id)
    status, body = await api.membership_action(alice.access_token, room_id, "invite", bob.user_id)
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_member_without_power_cannot_ban(
    api: Api, alice: Registered, bob: Registered, carol: Registered
) -> None:
    room_id = await _public_room_with(api, alice, bob, carol)
    status, body = await api.membership_action(carol.access_token, room_id, "ban", bob.user_id)
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_member_without_power_cannot_unban(
    api: Api, alice: Registered, bob: Registered, carol: Registered
) -> None:
    room_id = await _public_room_with(api, alice, bob, carol)
    await api.membership_action_ok(alice.access_token, room_id, "ban", bob.user_id)
    status, body = await api.membership_action(carol.access_token, room_id, "unban", bob.user_id)
    assert_error(status, body, 403, "M_FORBIDDEN")
    assert await _membership(api, alice, room_id, bob.user_id) == "ban"


async def test_unbanned_user_can_rejoin_public_room(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await _public_room_with(api, alice, bob)
    await api.membership_action_ok(alice.access_token, room_id, "ban", bob.user_id)
    await api.membership_action_ok(alice.access_token, room_id, "unban", bob.user_id)
    assert await _membership(api, alice, room_id, bob.user_id) == "leave"
    await api.join_ok(bob.access_token, room_id)


# -- member lists --------------------------------------------------------------


async def test_joined_rooms_lists_joined_rooms_only(
    api: Api, alice: Registered, bob: Registered
) -> None:
    joined = await _public_room_with(api, alice, bob)
    invited = await api.create_room(alice.access_token, invite=[bob.user_id])
    rooms = await api.joined_rooms(bob.access_token)
    assert joined in rooms
    assert invited not in rooms


async def test_joined_members_maps_joined_user_ids_only(
    api: Api, alice: Registered, bob: Registered, carol: Registered
) -> None:
    room_id = await _public_room_with(api, alice, bob)
    await api.membership_action_ok(alice.access_token, room_id, "invite", carol.user_id)
    status, body = await api.request(
        "GET", f"/rooms/{q(room_id)}/joined_members", token=bob.access_token
    )
    assert status == 200, body
    assert set(body["joined"]) == {alice.user_id, bob.user_id}, body
    assert all(isinstance(v, dict) for v in body["joined"].values()), body


async def test_members_returns_member_events(
    api: Api, alice: Registered, bob: Registered, carol: Registered
) -> None:
    room_id = await _public_room_with(api, alice, bob)
    await api.membership_action_ok(alice.access_token, room_id, "invite", carol.user_id)
    status, body = await api.request(
        "GET", f"/rooms/{q(room_id)}/members", token=alice.access_token
    )
    assert status == 200, body
    chunk = body["chunk"]
    assert all(ev["type"] == "m.room.member" for ev in chunk), body
    memberships = {ev["state_key"]: ev["content"]["membership"] for ev in chunk}
    assert memberships == {alice.user_id: "join", bob.user_id: "join", carol.user_id: "invite"}


async def test_members_filtered_by_membership(
    api: Api, alice: Registered, bob: Registered, carol: Registered
) -> None:
    room_id = await _public_room_with(api, alice, bob)
    await api.membership_action_ok(alice.access_token, room_id, "invite", carol.user_id)
    status, body = await api.request(
        "GET",
        f"/rooms/{q(room_id)}/members",
        token=alice.access_token,
        params={"membership": "invite"},
    )
    assert status == 200, body
    assert [ev["state_key"] for ev in body["chunk"]] == [carol.user_id], body
    status, body = await api.request(
        "GET",
        f"/rooms/{q(room_id)}/members",
        token=alice.access_token,
        params={"not_membership": "invite"},
    )
    assert status == 200, body
    assert {ev["state_key"] for ev in body["chunk"]} == {alice.user_id, bob.user_id}, body


async def test_non_member_cannot_list_members(api: Api, alice: Registered, bob: Registered) -> None:
    room_id = await api.create_room(alice.access_token, preset="private_chat")
    for endpoint in ("joined_members", "members"):
        status, body = await api.request(
            "GET", f"/rooms/{q(room_id)}/{endpoint}", token=bob.access_token
        )
        assert_error(status, body, 403, "M_FORBIDDEN")


# -- state ---------------------------------------------------------------------


async def test_put_state_then_get_returns_its_content(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    status, body = await api.put_state(
        alice.access_token, room_id, "com.linkchat.test.state", {"n": 1}, state_key="k1"
    )
    assert status == 200, body
    assert isinstance(body["event_id"], str) and body["event_id"].startswith("$"), body
    await api.put_state(alice.access_token, room_id, "com.linkchat.test.state", {"n": 2}, "k1")
    content = await api.state_content(alice.access_token, room_id, "com.linkchat.test.state", "k1")
    assert content == {"n": 2}, content


async def test_state_with_empty_key_works_with_and_without_trailing_slash(
    api: Api, alice: Registered
) -> None:
    room_id = await api.create_room(alice.access_token)
    status, body = await api.request(
        "PUT",
        f"/rooms/{q(room_id)}/state/m.room.topic",
        json={"topic": "no slash"},
        token=alice.access_token,
    )
    assert status == 200, body
    for path in (
        f"/rooms/{q(room_id)}/state/m.room.topic",
        f"/rooms/{q(room_id)}/state/m.room.topic/",
    ):
        status, body = await api.request("GET", path, token=alice.access_token)
        assert status == 200, (path, body)
        assert body["topic"] == "no slash", body


async def test_get_missing_state_is_not_found(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    status, body = await api.get_state(alice.access_token, room_id, "com.linkchat.nothing", "x")
    assert_error(status, body, 404, "M_NOT_FOUND")


async def test_full_state_lists_the_rooms_state_events(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token, name="Full state")
    status, body = await api.request("GET", f"/rooms/{q(room_id)}/state", token=alice.access_token)
    assert status == 200, body
    assert isinstance(body, list), body
    by_key = {(ev["type"], ev["state_key"]): ev for ev in body}
    for key in [
        ("m.room.create", ""),
        ("m.room.power_levels", ""),
        ("m.room.join_rules", ""),
        ("m.room.name", ""),
        ("m.room.member", alice.user_id),
    ]:
        assert key in by_key, (key, sorted(by_key))
    event = by_key[("m.room.name", "")]
    for field in ("event_id", "sender", "origin_server_ts", "content"):
        assert field in event, event
    assert event["room_id"] == room_id, event


async def test_non_member_cannot_read_state(api: Api, alice: Registered, bob: Registered) -> None:
    room_id = await api.create_room(alice.access_token, preset="private_chat", name="Secret")
    status, body = await api.get_state(bob.access_token, room_id, "m.room.name")
    assert_error(status, body, 403, "M_FORBIDDEN")
    status, body = await api.request("GET", f"/rooms/{q(room_id)}/state", token=bob.access_token)
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_member_without_power_cannot_set_state(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await _public_room_with(api, alice, bob)
    status, body = await api.put_state(bob.access_token, room_id, "m.room.name", {"name": "Mine"})
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_member_cannot_raise_own_power(api: Api, alice: Registered, bob: Registered) -> None:
    room_id = await _public_room_with(api, alice, bob)
    power = await api.state_content(bob.access_token, room_id, "m.room.power_levels")
    power.setdefault("users", {})[bob.user_id] = 100
    status, body = await api.put_state(bob.access_token, room_id, "m.room.power_levels", power)
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_non_member_cannot_send(api: Api, alice: Registered, bob: Registered) -> None:
    room_id = await api.create_room(alice.access_token, preset="public_chat")
    status, body = await api.send(
        bob.access_token, room_id, "m.room.message", {"msgtype": "m.text", "body": "hi"}
    )
    assert_error(status, body, 403, "M_FORBIDDEN")


# -- aliases -------------------------------------------------------------------


async def test_alias_put_get_delete(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    alias = _alias(_alias_name())
    path = f"/directory/room/{q(alias)}"
    status, body = await api.request(
        "PUT", path, json={"room_id": room_id}, token=alice.access_token
    )
    assert status == 200, body
    status, body = await api.request("GET", path)
    assert status == 200, body
    assert body["room_id"] == room_id, body
    assert isinstance(body.get("servers", []), list), body
    status, body = await api.request("DELETE", path, token=alice.access_token)
    assert status == 200, body
    status, body = await api.request("GET", path)
    assert_error(status, body, 404, "M_NOT_FOUND")


async def test_room_aliases_lists_local_aliases(api: Api, alice: Registered) -> None:
    name = _alias_name()
    room_id = await api.create_room(alice.access_token, room_alias_name=name)
    extra = _alias(_alias_name())
    await api.request(
        "PUT", f"/directory/room/{q(extra)}", json={"room_id": room_id}, token=alice.access_token
    )
    status, body = await api.request(
        "GET", f"/rooms/{q(room_id)}/aliases", token=alice.access_token
    )
    assert status == 200, body
    assert set(body["aliases"]) == {_alias(name), extra}, body


async def test_duplicate_alias_is_conflict(api: Api, alice: Registered) -> None:
    first = await api.create_room(alice.access_token)
    second = await api.create_room(alice.access_token)
    path = f"/directory/room/{q(_alias(_alias_name()))}"
    status, body = await api.request("PUT", path, json={"room_id": first}, token=alice.access_token)
    assert status == 200, body
    status, body = await api.request(
        "PUT", path, json={"room_id": second}, token=alice.access_token
    )
    # directory.yaml: 409 "A room alias with that name already exists", errcode M_UNKNOWN.
    assert_error(status, body, 409, "M_UNKNOWN")
    _, body = await api.request("GET", path)
    assert body["room_id"] == first, body


async def test_unknown_alias_is_not_found(api: Api) -> None:
    status, body = await api.request(
        "GET", f"/directory/room/{q(_alias('missing' + secrets.token_hex(4)))}"
    )
    assert_error(status, body, 404, "M_NOT_FOUND")


async def test_delete_unknown_alias_is_not_found(api: Api, alice: Registered) -> None:
    status, body = await api.request(
        "DELETE",
        f"/directory/room/{q(_alias('missing' + secrets.token_hex(4)))}",
        token=alice.access_token,
    )
    assert_error(status, body, 404, "M_NOT_FOUND")


async def test_non_member_cannot_list_room_aliases(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, preset="private_chat")
    status, body = await api.request("GET", f"/rooms/{q(room_id)}/aliases", token=bob.access_token)
    assert_error(status, body, 403, "M_FORBIDDEN")


# -- more membership and state rules -----------------------------------------


async def test_is_direct_marks_the_invite_member_event(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(
        alice.access_token, preset="trusted_private_chat", invite=[bob.user_id], is_direct=True
    )
    member = await api.state_content(alice.access_token, room_id, "m.room.member", bob.user_id)
    assert member["membership"] == "invite", member
    assert member.get("is_direct") is True, member


async def test_user_can_be_banned_before_joining(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, preset="public_chat")
    await api.membership_action_ok(alice.access_token, room_id, "ban", bob.user_id)
    status, body = await api.join(bob.access_token, room_id)
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_unbanning_a_user_who_is_not_banned_is_bad_state(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await _public_room_with(api, alice, bob)
    status, body = await api.membership_action(alice.access_token, room_id, "unban", bob.user_id)
    # Spec, "Other error codes": M_BAD_STATE, "such as attempting to unban a
    # user who is not banned". The status is not pinned down; 4xx it must be.
    assert 400 <= status < 500, (status, body)
    assert body.get("errcode") == "M_BAD_STATE", body
    assert await _membership(api, alice, room_id, bob.user_id) == "join"


async def test_moderator_cannot_grant_more_power_than_own(
    api: Api, alice: Registered, bob: Registered, carol: Registered
) -> None:
    room_id = await _public_room_with(api, alice, bob, carol)
    power = await api.state_content(alice.access_token, room_id, "m.room.power_levels")
    power.setdefault("users", {})[bob.user_id] = 50
    status, body = await api.put_state(alice.access_token, room_id, "m.room.power_levels", power)
    assert status == 200, body
    power["users"][carol.user_id] = 100
    status, body = await api.put_state(bob.access_token, room_id, "m.room.power_levels", power)
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_left_user_sees_state_as_it_was_when_they_left(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, preset="public_chat", topic="before")
    await api.join_ok(bob.access_token, room_id)
    await api.membership_action_ok(bob.access_token, room_id, "leave")
    status, body = await api.put_state(
        alice.access_token, room_id, "m.room.topic", {"topic": "after"}
    )
    assert status == 200, body
    topic = await api.state_content(bob.access_token, room_id, "m.room.topic")
    assert topic["topic"] == "before", topic


async def test_canonical_alias_must_point_to_the_room(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    other = await api.create_room(alice.access_token)
    alias = _alias(_alias_name())
    await api.request(
        "PUT", f"/directory/room/{q(alias)}", json={"room_id": other}, token=alice.access_token
    )
    status, body = await api.put_state(
        alice.access_token, room_id, "m.room.canonical_alias", {"alias": alias}
    )
    assert_error(status, body, 400, "M_BAD_ALIAS")
    status, body = await api.put_state(
        alice.access_token,
        room_id,
        "m.room.canonical_alias",
        {"alias": _alias("unmapped" + secrets.token_hex(4))},
    )
    assert_error(status, body, 400, "M_BAD_ALIAS")


async def test_canonical_alias_with_invalid_syntax_is_invalid_param(
    api: Api, alice: Registered
) -> None:
    room_id = await api.create_room(alice.access_token)
    status, body = await api.put_state(
        alice.access_token, room_id, "m.room.canonical_alias", {"alias": "not an alias"}
    )
    assert_error(status, body, 400, "M_INVALID_PARAM")


async def test_concurrent_joins_all_land(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token, preset="public_chat")
    users = [await api.register_user() for _ in range(8)]
    results = await asyncio.gather(*(api.join(u.access_token, room_id) for u in users))
    assert all(status == 200 for status, _ in results), results
    status, body = await api.request(
        "GET", f"/rooms/{q(room_id)}/joined_members", token=alice.access_token
    )
    assert status == 200, body
    assert set(body["joined"]) == {alice.user_id, *(u.user_id for u in users)}, body
