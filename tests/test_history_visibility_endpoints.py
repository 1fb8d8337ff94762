"""Every endpoint that serves a room's events or state keeps to history visibility.

One room per setting (world_readable, shared, invited, joined), in which alice talks
through four eras while four users stand in four situations (their membership then):

    era      alice                              joined_after  invited_then_joined  left   never
    before   says "before", reacts to it        -             -                    -      -
             invites the invitee
    invited  says "invited"                     -             invite               -      -
             (the three others join)
    joined   says "joined"                      join          join                 join   -
             (the leaver leaves), sets a topic
    after    says "after", reacts to "joined"   join          join                 leave  -

What each user may see is worked out below from that table with the spec's five
rules ("Room History Visibility", server behaviour), not from the server's code, and
each endpoint is held to it. The rooms are built once for the whole module.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import pytest_asyncio
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from homeserver.app import create_app
from tests.conftest import make_config
from tests.matrix import MatrixClient, User

pytestmark = pytest.mark.asyncio(loop_scope="module")

SETTINGS = ("world_readable", "shared", "invited", "joined")
SITUATIONS = ("joined_after", "invited_then_joined", "left", "never_joined")
ERAS = ("before", "invited", "joined", "after")
# The events each test looks for, and the era each was sent in.
PROBES = {
    "before": "before",
    "early_reaction": "before",
    "invited": "invited",
    "joined": "joined",
    "after": "after",
    "late_reaction": "after",
}
MESSAGES = ERAS  # the probes that are messages, one per era, named after it
OLD_TOPIC, NEW_TOPIC = "old topic", "new topic"

# The table above: each situation's membership when each era's events were sent.
MEMBERSHIP: dict[str, dict[str, str | None]] = {
    "joined_after": {"before": None, "invited": None, "joined": "join", "after": "join"},
    "invited_then_joined": {
        "before": None,
        "invited": "invite",
        "joined": "join",
        "after": "join",
    },
    "left": {"before": None, "invited": None, "joined": "join", "after": "leave"},
    "never_joined": {"before": None, "invited": None, "joined": None, "after": None},
}
# The eras after which each situation's user joined the room at some point.
JOINED_LATER = {
    "joined_after": {"before", "invited"},
    "invited_then_joined": {"before", "invited"},
    "left": {"before", "invited"},
    "never_joined": set(),
}


def may_see(setting: str, situation: str, era: str) -> bool:
    """The spec's rules, in its order, for an event of `era`."""
    membership = MEMBERSHIP[situation][era]
    if setting == "world_readable":
        return True
    if membership == "join":
        return True
    if setting == "shared" and era in JOINED_LATER[situation]:
        return True
    return membership == "invite" and setting == "invited"


def may_read_room(setting: str, situation: str) -> bool:
    """ "In all cases except world_readable, a user needs to join a room to view events in
    that room"; one who left still reads what they could see."""
    return setting == "world_readable" or situation != "never_joined"


def visible_probes(setting: str, situation: str, eras: tuple[str, ...] = ERAS) -> set[str]:
    return {
        probe for probe, era in PROBES.items() if era in eras and may_see(setting, situation, era)
    }


def members_when(era: str, users: dict[str, User], alice: User) -> dict[str, str]:
    """Who was what in the room when the era's events were sent, from the table."""
    members = {alice.user_id: "join"}
    for situation, user in users.items():
        membership = MEMBERSHIP[situation][era]
        if membership is not None:
            members[user.user_id] = membership
    return members


@dataclass
class Room:
    room_id: str
    word: str
    events: dict[str, str] = field(default_factory=dict)  # probe -> event ID
    tokens: dict[str, str] = field(default_factory=dict)  # message -> token just after it
    state_at: dict[str, set[str]] = field(default_factory=dict)  # message -> state event IDs

    def probes_in(self, events: list[dict[str, Any]]) -> set[str]:
        ids = {event["event_id"] for event in events}
        return {probe for probe, event_id in self.events.items() if event_id in ids}


@dataclass
class World:
    hs: MatrixClient
    alice: User
    users: dict[str, User]  # situation -> user
    since: dict[str, str]  # situation -> a sync token from before any of the rooms
    rooms: dict[str, Room]  # setting -> room


async def _say(hs: MatrixClient, alice: User, room: Room, era: str) -> None:
    body = {"msgtype": "m.text", "body": f"{room.word} {era}"}
    room.events[era] = await hs.send(alice, room.room_id, body)


async def _react(hs: MatrixClient, alice: User, room: Room, probe: str, to: str) -> None:
    relates = {"rel_type": "m.annotation", "event_id": room.events[to], "key": "👍"}
    room.events[probe] = await hs.send(
        alice, room.room_id, {"m.relates_to": relates}, event_type="m.reaction"
    )


async def _build_room(hs: MatrixClient, alice: User, users: dict[str, User], setting: str) -> Room:
    visibility = {"history_visibility": setting}
    room_id = await hs.create_room(
        alice,
        preset="public_chat",
        topic=OLD_TOPIC,
        initial_state=[
            {"type": "m.room.history_visibility", "state_key": "", "content": visibility}
        ],
    )
    room = Room(room_id, "w" + "".join(secrets.choice("bcdfghjklmnpqrstvz") for _ in range(10)))
    await _say(hs, alice, room, "before")
    await _react(hs, alice, room, "early_reaction", to="before")
    invitee = users["invited_then_joined"].user_id
    await hs.ok("POST", f"rooms/{room_id}/invite", {"user_id": invitee}, user=alice)
    await _say(hs, alice, room, "invited")
    for situation in ("joined_after", "invited_then_joined", "left"):
        await hs.join(users[situation], room_id)
    await _say(hs, alice, room, "joined")
    await hs.ok("POST", f"rooms/{room_id}/leave", {}, user=users["left"])
    await hs.ok("PUT", f"rooms/{room_id}/state/m.room.topic/", {"topic": NEW_TOPIC}, user=alice)
    await _say(hs, alice, room, "after")
    await _react(hs, alice, room, "late_reaction", to="joined")
    for message in MESSAGES:
        # As alice, who saw everything: the token just after each message and the state then.
        context = await hs.ok(
            "GET", f"rooms/{room_id}/context/{room.events[message]}?limit=0", user=alice
        )
        room.tokens[message] = context["end"]
        room.state_at[message] = {event["event_id"] for event in context["state"]}
    return room


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(run_dsn: str, data_dir: Path) -> AsyncIterator[World]:
    app = create_app(make_config(data_dir), run_dsn)
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        hs = MatrixClient(client)
        alice = await hs.register()
        users = {situation: await hs.register() for situation in SITUATIONS}
        since = {
            situation: (await hs.ok("GET", "sync", user=user))["next_batch"]
            for situation, user in users.items()
        }
        rooms = {setting: await _build_room(hs, alice, users, setting) for setting in SETTINGS}
        yield World(hs, alice, users, since, rooms)
    finally:
        await client.close()


def _each_setting_and_situation() -> Any:
    return pytest.mark.parametrize(
        ("setting", "situation"), [(s, u) for s in SETTINGS for u in SITUATIONS]
    )


def _topic(state: list[dict[str, Any]]) -> str:
    return next(e["content"]["topic"] for e in state if e["type"] == "m.room.topic")


# Single events and the events around one


@_each_setting_and_situation()
async def test_event_is_served_only_when_history_visibility_allows_it(
    world: World, setting: str, situation: str
) -> None:
    room, user = world.rooms[setting], world.users[situation]
    for probe, era in PROBES.items():
        reply = await world.hs.request(
            "GET", f"rooms/{room.room_id}/event/{room.events[probe]}", user=user
        )
        if may_see(setting, situation, era):
            assert reply.status == 200, (probe, reply.body)
            assert reply.body["event_id"] == room.events[probe]
            if probe in MESSAGES:
                assert reply.body["content"]["body"] == f"{room.word} {probe}"
        else:
            assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND"), (probe, reply.body)


@_each_setting_and_situation()
async def test_context_of_an_event_needs_it_visible_and_gives_the_state_at_it(
    world: World, setting: str, situation: str
) -> None:
    room, user = world.rooms[setting], world.users[situation]
    for message in MESSAGES:
        reply = await world.hs.request(
            "GET", f"rooms/{room.room_id}/context/{room.events[message]}?limit=0", user=user
        )
        if not may_read_room(setting, situation):
            assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN"), message
        elif not may_see(setting, situation, message):
            assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND"), message
        else:
            assert reply.status == 200, (message, reply.body)
            assert reply.body["event"]["event_id"] == room.events[message]
            assert {e["event_id"] for e in reply.body["state"]} == room.state_at[message]


@_each_setting_and_situation()
async def test_context_around_an_event_leaves_out_what_the_user_may_not_see(
    world: World, setting: str, situation: str
) -> None:
    room, user = world.rooms[setting], world.users[situation]
    reply = await world.hs.request(
        "GET", f"rooms/{room.room_id}/context/{room.events['joined']}?limit=20", user=user
    )
    if not may_read_room(setting, situation):
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
        return
    if not may_see(setting, situation, "joined"):
        assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
        return
    assert reply.status == 200, reply.body
    body = reply.body
    assert room.probes_in(body["events_before"]) == visible_probes(
        setting, situation, ("before", "invited")
    )
    assert room.probes_in(body["events_after"]) == visible_probes(setting, situation, ("after",))
    # The state at the last event returned: one who left and may not see past it
    # gets the room as it was when they left.
    expected = NEW_TOPIC if may_see(setting, situation, "after") else OLD_TOPIC
    assert _topic(body["state"]) == expected


# Pages of history and relations


@_each_setting_and_situation()
async def test_messages_page_through_only_visible_history(
    world: World, setting: str, situation: str
) -> None:
    room, user = world.rooms[setting], world.users[situation]
    reply = await world.hs.request(
        "GET", f"rooms/{room.room_id}/messages?dir=b&limit=100", user=user
    )
    if not may_read_room(setting, situation):
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
        return
    assert reply.status == 200, reply.body
    assert "end" not in reply.body, "the room's whole history fits one page"
    assert room.probes_in(reply.body["chunk"]) == visible_probes(setting, situation)


@_each_setting_and_situation()
async def test_relations_need_a_visible_parent_and_leave_out_hidden_relations(
    world: World, setting: str, situation: str
) -> None:
    room, user = world.rooms[setting], world.users[situation]
    for parent, reaction in (("before", "early_reaction"), ("joined", "late_reaction")):
        reply = await world.hs.request(
            "GET",
            f"/_matrix/client/v1/rooms/{room.room_id}/relations/{room.events[parent]}",
            user=user,
        )
        if not may_read_room(setting, situation):
            assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN"), parent
        elif not may_see(setting, situation, parent):
            assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND"), parent
        else:
            assert reply.status == 200, (parent, reply.body)
            shown = may_see(setting, situation, PROBES[reaction])
            assert room.probes_in(reply.body["chunk"]) == ({reaction} if shown else set())
            assert len(reply.body["chunk"]) == int(shown)


# State and members


@_each_setting_and_situation()
async def test_members_at_a_token_only_to_one_who_could_see_the_room_then(
    world: World, setting: str, situation: str
) -> None:
    room, user = world.rooms[setting], world.users[situation]
    for message in MESSAGES:
        at = quote(room.tokens[message])
        reply = await world.hs.request("GET", f"rooms/{room.room_id}/members?at={at}", user=user)
        if not may_see(setting, situation, message):
            assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN"), message
            continue
        assert reply.status == 200, (message, reply.body)
        members = {e["state_key"]: e["content"]["membership"] for e in reply.body["chunk"]}
        assert members == members_when(message, world.users, world.alice), message


@_each_setting_and_situation()
async def test_state_is_the_current_one_or_as_of_leaving(
    world: World, setting: str, situation: str
) -> None:
    room, user = world.rooms[setting], world.users[situation]
    whole = await world.hs.request("GET", f"rooms/{room.room_id}/state", user=user)
    topic = await world.hs.request("GET", f"rooms/{room.room_id}/state/m.room.topic", user=user)
    if not may_read_room(setting, situation):
        assert (whole.status, whole.errcode) == (403, "M_FORBIDDEN")
        assert (topic.status, topic.errcode) == (403, "M_FORBIDDEN")
        return
    # "If the user has left the room then the state is taken from the state of the room
    # when they left" (Synapse: even a world_readable room's).
    expected = OLD_TOPIC if situation == "left" else NEW_TOPIC
    assert whole.status == 200 and topic.status == 200, (whole.body, topic.body)
    assert _topic(whole.body) == expected
    assert topic.body == {"topic": expected}


# Search


@_each_setting_and_situation()
async def test_search_finds_only_visible_messages_and_context(
    world: World, setting: str, situation: str
) -> None:
    room, user = world.rooms[setting], world.users[situation]
    criteria = {
        "search_term": room.word,
        "filter": {"rooms": [room.room_id]},
        "event_context": {"before_limit": 5, "after_limit": 5},
    }
    body = await world.hs.ok(
        "POST", "search", {"search_categories": {"room_events": criteria}}, user=user
    )
    results = body["search_categories"]["room_events"]["results"]
    # Search covers the rooms one is or was in (not rooms one could only peek into).
    expected = set() if situation == "never_joined" else visible_probes(setting, situation)
    assert room.probes_in([r["result"] for r in results]) == expected & set(MESSAGES)
    for result in results:
        around = result["context"]["events_before"] + result["context"]["events_after"]
        assert room.probes_in(around) <= expected


# Sync and its stream


SYNC_FILTER = {"room": {"include_leave": True, "timeline": {"limit": 100}}}


def _check_sync(world: World, situation: str, body: dict[str, Any]) -> None:
    """Each room's timeline holds what the user may see of it, up to their leave."""
    for setting, room in world.rooms.items():
        joined = body["rooms"].get("join", {}).get(room.room_id)
        left = body["rooms"].get("leave", {}).get(room.room_id)
        if situation == "never_joined":
            assert joined is None and left is None, setting
            continue
        section = left if situation == "left" else joined
        assert section is not None, (setting, body["rooms"])
        assert not section["timeline"]["limited"], setting
        # A left room's timeline ends at the leave.
        eras = ERAS[:-1] if situation == "left" else ERAS
        shown = room.probes_in(section["timeline"]["events"])
        assert shown == visible_probes(setting, situation, eras), setting


def _sync_path(since: str | None) -> str:
    query = {"filter": json.dumps(SYNC_FILTER)}
    if since is not None:
        query["since"] = since
    return "sync?" + urlencode(query)


@pytest.mark.parametrize("situation", SITUATIONS)
async def test_sync_since_before_the_rooms_serves_only_visible_history(
    world: World, situation: str
) -> None:
    path = _sync_path(world.since[situation])
    _check_sync(world, situation, await world.hs.ok("GET", path, user=world.users[situation]))


@pytest.mark.parametrize("situation", SITUATIONS)
async def test_initial_sync_with_left_rooms_serves_only_visible_history(
    world: World, situation: str
) -> None:
    path = _sync_path(None)
    _check_sync(world, situation, await world.hs.ok("GET", path, user=world.users[situation]))


@pytest.mark.parametrize("situation", SITUATIONS)
async def test_sync_stream_serves_only_visible_history(world: World, situation: str) -> None:
    user = world.users[situation]
    ws = await world.hs.http.ws_connect(
        "/_linkchat/v1/sync/stream", headers={"Authorization": f"Bearer {user.token}"}
    )
    hello: dict[str, Any] = {"filter": SYNC_FILTER}
    if situation != "never_joined":
        # Nothing happened since for one who never joined: the stream would stay quiet.
        hello["since"] = world.since[situation]
    try:
        await ws.send_str(json.dumps(hello))
        message = await ws.receive(timeout=30)
        assert message.type == WSMsgType.TEXT, message
        _check_sync(world, situation, json.loads(message.data))
    finally:
        await ws.close()
