"""Broadcast channels: admins post, subscribers read and react, one post is one event."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import jsonschema
import pytest

from homeserver.api.app_keys import APPENDER
from homeserver.errors import MatrixError
from homeserver.events.model import Draft
from homeserver.events.validation import check_reaction_key, grapheme_count
from tests.conftest import AppFactory
from tests.matrix import MatrixClient, Reply, User

CHANNEL = {"type": "com.linkchat.channel"}
SCHEMA = json.loads(
    (Path(__file__).resolve().parent.parent / "spec" / "channels.schema.json").read_text()
)
TEXT = {"msgtype": "m.text", "body": "news"}


async def _channel(hs: MatrixClient, owner: User, **body: Any) -> str:
    body.setdefault("preset", "public_chat")
    return await hs.create_room(owner, creation_content=CHANNEL, **body)


async def _with_subscribers(hs: MatrixClient, count: int) -> tuple[str, User, list[User]]:
    owner = await hs.register()
    room = await _channel(hs, owner, name="News")
    subscribers = [await hs.register() for _ in range(count)]
    for user in subscribers:
        await hs.join(user, room)
    return room, owner, subscribers


async def _send(hs: MatrixClient, user: User, room: str, event_type: str, content: Any) -> Reply:
    txn = secrets.token_hex(6)
    return await hs.request("PUT", f"rooms/{room}/send/{event_type}/{txn}", content, user=user)


def _reaction(event_id: str, key: str = "👍") -> dict[str, Any]:
    return {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}


async def _set_role(hs: MatrixClient, sender: User, room: str, target: User, role: str) -> None:
    path = f"/_linkchat/v1/rooms/{quote(room)}/roles/{quote(target.user_id)}"
    await hs.ok("PUT", path, {"role": role}, user=sender)


async def _info(hs: MatrixClient, user: User, room: str) -> Reply:
    return await hs.request("GET", f"/_linkchat/v1/channels/{quote(room)}", user=user)


def _forbidden(reply: Reply) -> bool:
    return (reply.status, reply.errcode) == (403, "M_FORBIDDEN")


# Who may do what


async def test_the_creator_owns_the_channel_and_can_post(hs: MatrixClient) -> None:
    room, owner, _ = await _with_subscribers(hs, 0)
    assert (await _send(hs, owner, room, "m.room.message", TEXT)).status == 200
    assert (await _info(hs, owner, room)).body["your_role"] == "owner"


async def test_a_subscriber_cannot_post(hs: MatrixClient) -> None:
    room, _, (bob,) = await _with_subscribers(hs, 1)
    assert _forbidden(await _send(hs, bob, room, "m.room.message", TEXT))
    assert _forbidden(await _send(hs, bob, room, "com.linkchat.message", {"body": "hi"}))


async def test_a_subscriber_reacts_and_takes_back_their_own_reaction(hs: MatrixClient) -> None:
    room, owner, (bob,) = await _with_subscribers(hs, 1)
    post = await hs.send(owner, room, TEXT)
    reaction = await _send(hs, bob, room, "m.reaction", _reaction(post))
    assert reaction.status == 200, reaction.body
    redaction = await hs.request(
        "PUT", f"rooms/{room}/redact/{reaction.body['event_id']}/r1", {}, user=bob
    )
    assert redaction.status == 200, redaction.body


async def test_a_subscriber_cannot_post_10_kb_of_text_as_a_reaction(hs: MatrixClient) -> None:
    room, owner, (bob,) = await _with_subscribers(hs, 1)
    post = await hs.send(owner, room, TEXT)
    for key in ("spam " * 2000, "x" * 65, "e\u0301" * 200):
        reply = await _send(hs, bob, room, "m.reaction", _reaction(post, key))
        assert (reply.status, reply.errcode) == (400, "M_BAD_JSON"), (key[:10], reply)
    # Nor text in a reaction that relates to nothing, shown by clients that render it.
    reply = await _send(hs, bob, room, "m.reaction", {"body": "spam " * 2000})
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON"), reply
    assert await _timeline_types(hs, bob, room, post) == []


async def test_a_subscriber_reacts_with_emoji_and_short_words(hs: MatrixClient) -> None:
    room, owner, (bob,) = await _with_subscribers(hs, 1)
    post = await hs.send(owner, room, TEXT)
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
    keys = ["\U0001f44d", "\U0001f44d\U0001f3fd", "\U0001f1eb\U0001f1f7", family, "+1", "x" * 64]
    for key in keys:
        reply = await _send(hs, bob, room, "m.reaction", _reaction(post, key))
        assert reply.status == 200, (key, reply)


async def test_a_long_reaction_key_is_still_accepted_outside_channels(hs: MatrixClient) -> None:
    # Matrix sets no bound, nor does Synapse: in a room where members may post,
    # a long key is no more than a message they could send.
    alice = await hs.register()
    room = await hs.create_room(alice)
    post = await hs.send(alice, room, TEXT)
    reply = await _send(hs, alice, room, "m.reaction", _reaction(post, "x" * 500))
    assert reply.status == 200, reply


def test_a_reaction_key_is_measured_in_what_a_reader_sees() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
    assert grapheme_count(family) == 1
    assert grapheme_count("\U0001f44d\U0001f3fd") == 1  # thumbs up, skin tone
    assert grapheme_count("\U0001f1eb\U0001f1f7\U0001f1e9\U0001f1ea") == 2  # two flags
    assert grapheme_count("\u2764\ufe0f") == 1
    assert grapheme_count("e\u0301te\u0301") == 3
    assert grapheme_count("hello") == 5
    assert grapheme_count("\u0301abc") == 4  # a lone mark counts
    # Stacked marks are one cluster, so the byte bound stops them.
    with pytest.raises(MatrixError):
        check_reaction_key("a" + "\u0301" * 200)
    with pytest.raises(MatrixError):
        check_reaction_key("\u4e2d" * 65)
    check_reaction_key("\u4e2d" * 64)
    check_reaction_key(family * 10)


async def _timeline_types(hs: MatrixClient, user: User, room: str, after: str) -> list[str]:
    body = await hs.ok("GET", f"rooms/{room}/messages?dir=b&limit=50", user=user)
    types = []
    for event in body["chunk"]:
        if event["event_id"] == after:
            break
        types.append(event["type"])
    return types


async def test_a_subscriber_cannot_remove_someone_elses_post_or_reaction(
    hs: MatrixClient,
) -> None:
    room, owner, (bob, carol) = await _with_subscribers(hs, 2)
    post = await hs.send(owner, room, TEXT)
    reaction = await hs.send(carol, room, _reaction(post), "m.reaction")
    for target in (post, reaction):
        reply = await hs.request("PUT", f"rooms/{room}/redact/{target}/r-{target}", {}, user=bob)
        assert _forbidden(reply), reply


async def test_a_subscriber_cannot_change_the_channel(hs: MatrixClient) -> None:
    room, _, (bob,) = await _with_subscribers(hs, 1)
    reply = await hs.request("PUT", f"rooms/{room}/state/m.room.name/", {"name": "x"}, user=bob)
    assert _forbidden(reply)


async def test_an_admin_posts_and_renames_the_channel(hs: MatrixClient) -> None:
    room, owner, (bob, carol) = await _with_subscribers(hs, 2)
    await _set_role(hs, owner, room, bob, "admin")
    assert (await _send(hs, bob, room, "m.room.message", TEXT)).status == 200
    await hs.ok("PUT", f"rooms/{room}/state/m.room.name/", {"name": "Renamed"}, user=bob)
    info = (await _info(hs, carol, room)).body
    assert (info["name"], info["your_role"]) == ("Renamed", "member")
    assert (await _info(hs, bob, room)).body["your_role"] == "admin"


async def test_a_moderator_cannot_post_but_removes_reactions_and_kicks(hs: MatrixClient) -> None:
    room, owner, (mod, bob) = await _with_subscribers(hs, 2)
    await _set_role(hs, owner, room, mod, "moderator")
    assert _forbidden(await _send(hs, mod, room, "m.room.message", TEXT))
    post = await hs.send(owner, room, TEXT)
    reaction = await hs.send(bob, room, _reaction(post), "m.reaction")
    await hs.ok("PUT", f"rooms/{room}/redact/{reaction}/r1", {}, user=mod)
    await hs.ok("POST", f"rooms/{room}/kick", {"user_id": bob.user_id}, user=mod)
    assert (await _info(hs, owner, room)).body["subscriber_count"] == 2


async def test_a_moderator_cannot_remove_the_owners_post_author(hs: MatrixClient) -> None:
    room, owner, (mod,) = await _with_subscribers(hs, 1)
    await _set_role(hs, owner, room, mod, "moderator")
    reply = await hs.request("POST", f"rooms/{room}/kick", {"user_id": owner.user_id}, user=mod)
    assert _forbidden(reply)


async def test_the_creators_power_level_override_still_wins(hs: MatrixClient) -> None:
    owner, bob = await hs.register(), await hs.register()
    room = await _channel(hs, owner, power_level_content_override={"events_default": 0})
    await hs.join(bob, room)
    assert (await _send(hs, bob, room, "m.room.message", TEXT)).status == 200


async def test_subscribers_get_the_post_in_sync(hs: MatrixClient) -> None:
    room, owner, (bob,) = await _with_subscribers(hs, 1)
    since = (await hs.sync(bob))["next_batch"]
    post = await hs.send(owner, room, TEXT)
    body = await hs.sync(bob, since, wait_ms=5000)
    timeline = body["rooms"]["join"][room]["timeline"]["events"]
    assert post in [event["event_id"] for event in timeline]


async def test_a_plain_room_keeps_its_matrix_levels(hs: MatrixClient) -> None:
    owner, bob = await hs.register(), await hs.register()
    room = await hs.create_room(owner, preset="public_chat")
    await hs.join(bob, room)
    assert (await _send(hs, bob, room, "m.room.message", TEXT)).status == 200


# Public and private


async def test_a_public_channel_is_joined_by_its_alias(hs: MatrixClient) -> None:
    owner, bob = await hs.register(), await hs.register()
    name = "news_" + secrets.token_hex(4)
    room = await _channel(hs, owner, visibility="public", room_alias_name=name)
    joined = await hs.ok("POST", f"join/{quote(f'#{name}:localhost')}", {}, user=bob)
    assert joined["room_id"] == room
    assert (await _info(hs, bob, room)).body["subscriber_count"] == 2


async def test_a_private_channel_is_joined_only_by_invitation(hs: MatrixClient) -> None:
    owner, bob = await hs.register(), await hs.register()
    room = await _channel(hs, owner, preset="private_chat")
    assert _forbidden(await hs.request("POST", f"join/{room}", {}, user=bob))
    await hs.ok("POST", f"rooms/{room}/invite", {"user_id": bob.user_id}, user=owner)
    await hs.join(bob, room)
    assert _forbidden(await _send(hs, bob, room, "m.room.message", TEXT))


async def test_a_subscriber_cannot_invite_to_a_private_channel(hs: MatrixClient) -> None:
    owner, bob, carol = await hs.register(), await hs.register(), await hs.register()
    room = await _channel(hs, owner, preset="private_chat", invite=[bob.user_id])
    await hs.join(bob, room)
    reply = await hs.request("POST", f"rooms/{room}/invite", {"user_id": carol.user_id}, user=bob)
    assert _forbidden(reply)


async def test_a_public_channel_is_listed_in_the_room_directory(hs: MatrixClient) -> None:
    owner = await hs.register()
    room = await _channel(hs, owner, visibility="public", name="Listed news")
    reply = await hs.request("GET", "publicRooms?limit=500", user=owner)
    assert reply.status == 200, reply.body
    listed = {entry["room_id"]: entry for entry in reply.body["chunk"]}
    assert listed[room]["room_type"] == "com.linkchat.channel"
    assert listed[room]["name"] == "Listed news"


# GET /_linkchat/v1/channels/{roomId}


async def test_channel_info_describes_the_channel(hs: MatrixClient) -> None:
    owner, bob = await hs.register(), await hs.register()
    room = await _channel(hs, owner, name="News", topic="Daily")
    await hs.join(bob, room)
    assert (await _info(hs, bob, room)).body == {
        "room_id": room,
        "name": "News",
        "topic": "Daily",
        "subscriber_count": 2,
        "your_role": "member",
        "public": True,
    }


async def test_channel_info_and_creation_content_match_the_spec_schema(hs: MatrixClient) -> None:
    owner = await hs.register()
    jsonschema.validate(CHANNEL, {**SCHEMA, "$ref": "#/$defs/create_content"})
    room = await _channel(hs, owner, name="News")
    info = (await _info(hs, owner, room)).body
    jsonschema.validate(info, {**SCHEMA, "$ref": "#/$defs/channel_response"})


async def test_channel_info_of_a_public_channel_is_shown_to_someone_not_in_it(
    hs: MatrixClient,
) -> None:
    room, _, _ = await _with_subscribers(hs, 1)
    stranger = await hs.register()
    info = (await _info(hs, stranger, room)).body
    assert (info["your_role"], info["subscriber_count"], info["topic"]) == (None, 2, None)


async def test_channel_info_of_a_private_channel_is_for_members_and_invitees(
    hs: MatrixClient,
) -> None:
    owner, bob, stranger = await hs.register(), await hs.register(), await hs.register()
    room = await _channel(hs, owner, preset="private_chat", invite=[bob.user_id])
    assert _forbidden(await _info(hs, stranger, room))
    info = (await _info(hs, bob, room)).body
    assert (info["public"], info["your_role"], info["subscriber_count"]) == (False, None, 1)


async def test_channel_info_of_a_room_that_is_not_a_channel(hs: MatrixClient) -> None:
    owner = await hs.register()
    room = await hs.create_room(owner)
    reply = await _info(hs, owner, room)
    assert (reply.status, reply.errcode) == (404, "LINKCHAT_NOT_A_CHANNEL")
    reply = await _info(hs, owner, "!nosuchroom:localhost")
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    reply = await _info(hs, owner, "nonsense")
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")


# Cost of a post


async def _row_counts(conn: asyncpg.Connection) -> dict[str, int]:
    tables = await conn.fetch(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
    )
    return {
        row["table_name"]: int(await conn.fetchval(f'SELECT count(*) FROM "{row["table_name"]}"'))
        for row in tables
    }


async def test_one_post_to_200_subscribers_writes_one_event_and_nothing_per_subscriber(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    hs = await start_app(dsn=fresh_dsn)
    owner, reader = await hs.register(), await hs.register()
    room = await _channel(hs, owner)
    await hs.join(reader, room)
    # Subscribers joined straight through the write path: 200 registrations
    # would spend ten seconds hashing passwords and prove nothing more here.
    others = [f"@sub{i}_{secrets.token_hex(3)}:localhost" for i in range(199)]
    await hs.app[APPENDER].append_group(
        [
            Draft(room, user, "m.room.member", {"membership": "join"}, state_key=user)
            for user in others
        ]
    )
    assert (await _info(hs, owner, room)).body["subscriber_count"] == 201
    since = (await hs.sync(reader))["next_batch"]
    conn = await asyncpg.connect(fresh_dsn)
    try:
        before = await _row_counts(conn)
        post = await hs.send(owner, room, TEXT)
        # Reading it (unread counts included) writes nothing either.
        synced = await hs.sync(reader, since, wait_ms=5000)
        after = await _row_counts(conn)
    finally:
        await conn.close()
    joined = synced["rooms"]["join"][room]
    assert post in [event["event_id"] for event in joined["timeline"]["events"]]
    grown = {
        table: after[table] - before[table] for table in after if after[table] != before[table]
    }
    assert grown.pop("events", 0) == 1
    # Whatever else a post writes is per post (a search entry, a chain head), never per subscriber.
    assert all(rows <= 2 for rows in grown.values()), grown


async def test_a_version_12_channel_is_owned_by_its_creator(hs: MatrixClient) -> None:
    owner, reader = await hs.register(), await hs.register()
    room = await _channel(hs, owner, name="V12 news", room_version="12")
    await hs.join(reader, room)
    info = await hs.ok("GET", f"/_linkchat/v1/channels/{room}", user=owner)
    assert info["your_role"] == "owner"
    assert (await _send(hs, owner, room, "m.room.message", TEXT)).status == 200
    refused = await _send(hs, reader, room, "m.room.message", TEXT)
    assert (refused.status, refused.errcode) == (403, "M_FORBIDDEN")
