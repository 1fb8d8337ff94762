"""Shadow-bans (POST/DELETE /_synapse/admin/v1/users/{userId}/shadow_ban): what a
shadow-banned user sends is answered as usual, and they see it as usual, but nobody
else ever sees it, wherever events are served; what they sent while banned stays
hidden once the ban is over."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.admin import AdminServer, assert_admins_only, start_with_admin
from tests.audit_log import assert_replay_identical
from tests.conftest import AppFactory
from tests.matrix import MatrixClient, User
from tests.push_gateway import RecordingGateway
from tests.test_push_sending import add_pusher

ADMIN = "/_synapse/admin/v1"


def shadow_ban_path(user: User) -> str:
    return f"{ADMIN}/users/{user.user_id}/shadow_ban"


@pytest.fixture
async def gateway() -> AsyncIterator[RecordingGateway]:
    found = RecordingGateway()
    await found.start()
    yield found
    await found.stop()


def text(body: str) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body}


@dataclass
class Scene:
    server: AdminServer
    alice: User  # an ordinary member, who must never see the banned user's events
    mallory: User  # shadow-banned
    room: str
    before: str  # alice's message, sent before the ban, that mallory replies to
    pushkey: str
    alice_since: str  # alice's sync token before the ban
    mallory_since: str

    @property
    def hs(self) -> MatrixClient:
        return self.server.hs


async def scene(start_app: AppFactory, gateway: RecordingGateway, dsn: str | None) -> Scene:
    server = await start_with_admin(start_app, dsn)
    hs = server.hs
    alice, mallory = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat", name="Lobby")
    await hs.join(mallory, room)
    pushkey = await add_pusher(hs, alice, gateway.url)
    before = await hs.send(alice, room, text("hello everyone"))
    alice_since = (await hs.sync(alice))["next_batch"]
    mallory_since = (await hs.sync(mallory))["next_batch"]
    assert await hs.ok("POST", shadow_ban_path(mallory), {}, user=server.admin) == {}
    return Scene(server, alice, mallory, room, before, pushkey, alice_since, mallory_since)


async def send_while_banned(s: Scene, word: str) -> dict[str, str]:
    """Everything a shadow-banned user might do to be seen; their event IDs by kind."""
    hs, mallory, room = s.hs, s.mallory, s.room
    sent = {
        "message": await hs.send(mallory, room, text(f"{word} buy cheap pills")),
        "reaction": await hs.send(
            mallory,
            room,
            {"m.relates_to": {"rel_type": "m.annotation", "event_id": s.before, "key": "💊"}},
            "m.reaction",
        ),
        "reply": await hs.send(
            mallory,
            room,
            {
                **text(f"{word} in a thread"),
                "m.relates_to": {"rel_type": "m.thread", "event_id": s.before},
            },
        ),
    }
    sent["edit"] = await hs.send(
        mallory,
        room,
        {
            **text(f"* {word} edited"),
            "m.new_content": text(f"{word} edited"),
            "m.relates_to": {"rel_type": "m.replace", "event_id": sent["message"]},
        },
    )
    # What would change the room for everyone is answered, and appended for no one.
    name = await hs.ok(
        "PUT", f"rooms/{room}/state/m.room.name/", {"name": f"{word} pills"}, user=mallory
    )
    sent["name"] = name["event_id"]
    redaction = await hs.ok(
        "PUT", f"rooms/{room}/redact/{s.before}/r{secrets.token_hex(4)}", {}, user=mallory
    )
    sent["redaction"] = redaction["event_id"]
    await hs.ok("PUT", f"rooms/{room}/typing/{mallory.user_id}", {"typing": True}, user=mallory)
    return sent


async def marker(s: Scene) -> str:
    """A message of the room's creator after the banned user's: once anyone is shown or
    pushed it, they have been shown or pushed whatever came before."""
    bob = await s.hs.register()
    await s.hs.join(bob, s.room)
    return await s.hs.send(bob, s.room, text("marker"))


def served_ids(body: Any) -> set[str]:
    """Every event ID anywhere in a response."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("event_id"), str):
                found.add(node["event_id"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(body)
    return found


@pytest.mark.window_sources
async def test_nobody_but_the_banned_user_ever_sees_what_they_send(
    start_app: AppFactory, gateway: RecordingGateway
) -> None:
    s = await scene(start_app, gateway, None)
    hs, alice, mallory, room = s.hs, s.alice, s.mallory, s.room
    sent = await send_while_banned(s, "spam")
    last = await marker(s)
    hidden = set(sent.values())

    # Sync, incremental (the window source under test) and initial.
    incremental = await hs.sync(alice, since=s.alice_since)
    assert last in served_ids(incremental)
    assert not hidden & served_ids(incremental), incremental
    ephemeral = incremental["rooms"]["join"][room].get("ephemeral", {}).get("events", [])
    typing = [e["content"]["user_ids"] for e in ephemeral if e["type"] == "m.typing"]
    assert not any(mallory.user_id in users for users in typing)
    initial = await hs.sync(alice)
    assert last in served_ids(initial) and not hidden & served_ids(initial)
    # The room is as it was: its name, alice's message.
    assert (await hs.ok("GET", f"rooms/{room}/state/m.room.name/", user=alice)) == {"name": "Lobby"}
    kept = await hs.ok("GET", f"rooms/{room}/event/{s.before}", user=alice)
    assert kept["content"]["body"] == "hello everyone"
    # Unread counts: only the marker counts (mallory's message and reply would).
    unread = initial["rooms"]["join"][room]["unread_notifications"]
    assert unread["notification_count"] == 1

    # History: /messages, /context, /event, /relations, /threads.
    messages = await hs.ok("GET", f"rooms/{room}/messages?dir=b&limit=50", user=alice)
    assert last in served_ids(messages) and not hidden & served_ids(messages)
    context = await hs.ok("GET", f"rooms/{room}/context/{s.before}?limit=20", user=alice)
    assert not hidden & served_ids(context)
    for event_id in (sent["message"], sent["reply"], sent["edit"]):
        reply = await hs.request("GET", f"rooms/{room}/event/{event_id}", user=alice)
        assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    relations = await hs.ok(
        "GET", f"/_matrix/client/v1/rooms/{room}/relations/{s.before}", user=alice
    )
    assert relations["chunk"] == []
    assert "m.relations" not in kept.get("unsigned", {})
    threads = await hs.ok("GET", f"/_matrix/client/v1/rooms/{room}/threads", user=alice)
    assert threads["chunk"] == []

    # Search.
    body = {"search_categories": {"room_events": {"search_term": "spam"}}}
    found = (await hs.ok("POST", "search", body, user=alice))["search_categories"]
    assert (found["room_events"]["count"], found["room_events"]["results"]) == (0, [])

    # Push and /notifications: the marker arrives, nothing of mallory's before it.
    await gateway.wait_for(
        lambda: any(n["notification"]["event_id"] == last for n in gateway.received)
    )
    pushed = {notification["event_id"] for notification in gateway.for_pushkey(s.pushkey)}
    assert not hidden & pushed
    notifications = await hs.ok("GET", "notifications", user=alice)
    assert last in served_ids(notifications) and not hidden & served_ids(notifications)


@pytest.mark.window_sources
async def test_the_banned_user_sees_their_own_events_as_anyone_would(
    start_app: AppFactory, gateway: RecordingGateway
) -> None:
    s = await scene(start_app, gateway, None)
    hs, mallory, room = s.hs, s.mallory, s.room
    sent = await send_while_banned(s, "mine")
    own = {sent["message"], sent["reaction"], sent["reply"], sent["edit"]}
    assert own <= served_ids(await hs.sync(mallory, since=s.mallory_since))
    assert own <= served_ids(await hs.sync(mallory))
    messages = await hs.ok("GET", f"rooms/{room}/messages?dir=b&limit=50", user=mallory)
    assert own <= served_ids(messages)
    event = await hs.ok("GET", f"rooms/{room}/event/{sent['message']}", user=mallory)
    assert event["sender"] == mallory.user_id
    relations = await hs.ok(
        "GET", f"/_matrix/client/v1/rooms/{room}/relations/{s.before}", user=mallory
    )
    assert {sent["reaction"], sent["reply"]} <= served_ids(relations)
    body = {"search_categories": {"room_events": {"search_term": "pills"}}}
    found = (await hs.ok("POST", "search", body, user=mallory))["search_categories"]
    assert found["room_events"]["count"] == 1


@pytest.mark.window_sources
async def test_what_was_sent_while_banned_stays_hidden_after_the_ban(
    start_app: AppFactory, gateway: RecordingGateway, fresh_dsn: str
) -> None:
    s = await scene(start_app, gateway, fresh_dsn)
    hs, alice, mallory, room, admin = s.hs, s.alice, s.mallory, s.room, s.server.admin
    spam = await hs.send(mallory, room, text("spam while banned"))
    user_path = f"{ADMIN.replace('v1', 'v2')}/users/{mallory.user_id}"
    assert (await hs.ok("GET", user_path, user=admin))["shadow_banned"] is True

    assert await hs.ok("DELETE", shadow_ban_path(mallory), {}, user=admin) == {}
    assert (await hs.ok("GET", user_path, user=admin))["shadow_banned"] is False
    after = await hs.send(mallory, room, text("sorry"))
    seen = served_ids(await hs.sync(alice, since=s.alice_since))
    assert after in seen and spam not in seen
    messages = await hs.ok("GET", f"rooms/{room}/messages?dir=b&limit=50", user=alice)
    assert after in served_ids(messages) and spam not in served_ids(messages)

    # Banned again: a second stretch.
    await hs.ok("POST", shadow_ban_path(mallory), {"reason": "again"}, user=admin)
    again = await hs.send(mallory, room, text("spam again"))
    seen = served_ids(await hs.sync(alice, since=s.alice_since))
    assert after in seen and not {spam, again} & seen

    trail = await hs.ok("GET", "/_linkchat/v1/admin/audit?action=user.shadow_ban", user=admin)
    assert [(a["target"], a["details"]) for a in trail["actions"]] == [
        (mallory.user_id, {"shadow_banned": True}),
        (mallory.user_id, {"shadow_banned": False}),
        (mallory.user_id, {"shadow_banned": True}),
    ]
    assert trail["actions"][0]["reason"] == "again"
    await assert_replay_identical(fresh_dsn)


@pytest.mark.window_sources
async def test_invites_of_a_banned_user_reach_nobody(
    start_app: AppFactory, gateway: RecordingGateway
) -> None:
    s = await scene(start_app, gateway, None)
    hs, mallory = s.hs, s.mallory
    carol = await hs.register()
    since = (await hs.sync(carol))["next_batch"]
    private = await hs.create_room(mallory, invite=[carol.user_id])
    other = await hs.create_room(mallory)
    await hs.ok("POST", f"rooms/{other}/invite", {"user_id": carol.user_id}, user=mallory)
    await marker(s)
    invites = (await hs.sync(carol, since=since)).get("rooms", {}).get("invite", {})
    assert private not in invites and other not in invites
    reply = await hs.request("POST", f"join/{private}", {}, user=carol)
    assert reply.status == 403


async def test_shadow_bans_are_for_admins_only(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, user = server.hs, server.user
    for method in ("POST", "DELETE"):
        await assert_admins_only(hs, user, method, shadow_ban_path(server.admin), {})
    reply = await hs.request(
        "POST", f"{ADMIN}/users/@someone:elsewhere.example/shadow_ban", {}, user=server.admin
    )
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")
    reply = await hs.request(
        "POST", f"{ADMIN}/users/@nobody_here:localhost/shadow_ban", {}, user=server.admin
    )
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    # Twice is once.
    for _ in range(2):
        await hs.ok("POST", shadow_ban_path(user), {}, user=server.admin)
    trail = await hs.ok(
        "GET", "/_linkchat/v1/admin/audit?action=user.shadow_ban", user=server.admin
    )
    assert len([a for a in trail["actions"] if a["target"] == user.user_id]) == 1
