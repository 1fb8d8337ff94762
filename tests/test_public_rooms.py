"""The public room directory: publishing (createRoom, /directory/list/room) and listing
(/publicRooms) as clients browse it, and that publishing is a fact of the log."""

from __future__ import annotations

import secrets
from typing import Any

import asyncpg

from homeserver.audit.replay import replay
from tests.conftest import AppFactory
from tests.matrix import MatrixClient, User


def _word() -> str:
    return "dir" + secrets.token_hex(6)


async def _listed(hs: MatrixClient, user: User, term: str, **body: Any) -> dict[str, Any]:
    page: dict[str, Any] = await hs.ok(
        "POST", "publicRooms", {"filter": {"generic_search_term": term}, **body}, user=user
    )
    return page


async def test_public_room_is_listed_with_its_summary(hs: MatrixClient) -> None:
    alice = await hs.register()
    bob = await hs.register()
    word = _word()
    room = await hs.create_room(
        alice,
        visibility="public",
        name=f"Hiking {word}",
        topic="Trails and gear",
        room_alias_name=word,
        initial_state=[
            {"type": "m.room.avatar", "state_key": "", "content": {"url": "mxc://x/avatar"}},
            {
                "type": "m.room.guest_access",
                "state_key": "",
                "content": {"guest_access": "can_join"},
            },
        ],
    )
    await hs.join(bob, room)
    page = await _listed(hs, bob, word)
    assert page["chunk"] == [
        {
            "room_id": room,
            "name": f"Hiking {word}",
            "topic": "Trails and gear",
            "canonical_alias": f"#{word}:localhost",
            "avatar_url": "mxc://x/avatar",
            "num_joined_members": 2,
            "world_readable": False,
            "guest_can_join": True,
            "join_rule": "public",
        }
    ]
    assert page["total_room_count_estimate"] >= 1
    assert "next_batch" not in page and "prev_batch" not in page
    # The term matches the topic and the alias too, in any case.
    assert [r["room_id"] for r in (await _listed(hs, bob, "TRAILS AND"))["chunk"]].count(room)
    assert [r["room_id"] for r in (await _listed(hs, bob, f"#{word}"))["chunk"]] == [room]
    visibility = await hs.ok("GET", f"directory/list/room/{room}")
    assert visibility == {"visibility": "public"}


async def test_rooms_not_published_are_not_listed(hs: MatrixClient) -> None:
    alice = await hs.register()
    word = _word()
    room = await hs.create_room(alice, preset="public_chat", name=word)
    assert (await _listed(hs, alice, word))["chunk"] == []
    assert await hs.ok("GET", f"directory/list/room/{room}") == {"visibility": "private"}


async def test_publishing_and_unpublishing_through_the_directory_list(hs: MatrixClient) -> None:
    alice = await hs.register()
    word = _word()
    room = await hs.create_room(alice, preset="public_chat", name=word)
    await hs.ok("PUT", f"directory/list/room/{room}", {"visibility": "public"}, user=alice)
    assert [r["room_id"] for r in (await _listed(hs, alice, word))["chunk"]] == [room]
    # Publishing twice changes nothing and appends nothing.
    state = await hs.ok("GET", f"rooms/{room}/state", user=alice)
    await hs.ok("PUT", f"directory/list/room/{room}", {"visibility": "public"}, user=alice)
    assert len(await hs.ok("GET", f"rooms/{room}/state", user=alice)) == len(state)
    await hs.ok("PUT", f"directory/list/room/{room}", {"visibility": "private"}, user=alice)
    assert (await _listed(hs, alice, word))["chunk"] == []
    assert await hs.ok("GET", f"directory/list/room/{room}") == {"visibility": "private"}


async def test_only_members_with_power_may_publish(hs: MatrixClient) -> None:
    alice = await hs.register()
    bob = await hs.register()
    eve = await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    for user in (bob, eve):
        reply = await hs.request(
            "PUT", f"directory/list/room/{room}", {"visibility": "public"}, user=user
        )
        assert reply.status == 403 and reply.errcode == "M_FORBIDDEN", reply.body
    assert await hs.ok("GET", f"directory/list/room/{room}") == {"visibility": "private"}
    # A moderator may: the power to change the room's state is what it takes.
    levels = await hs.ok("GET", f"rooms/{room}/state/m.room.power_levels/", user=alice)
    levels["users"][bob.user_id] = 50
    await hs.ok("PUT", f"rooms/{room}/state/m.room.power_levels/", levels, user=alice)
    await hs.ok("PUT", f"directory/list/room/{room}", {"visibility": "public"}, user=bob)
    assert await hs.ok("GET", f"directory/list/room/{room}") == {"visibility": "public"}


async def test_unknown_room_and_bad_input_are_refused(hs: MatrixClient) -> None:
    alice = await hs.register()
    unknown = "!nosuchroom:localhost"
    reply = await hs.request("GET", f"directory/list/room/{unknown}")
    assert reply.status == 404 and reply.errcode == "M_NOT_FOUND"
    reply = await hs.request(
        "PUT", f"directory/list/room/{unknown}", {"visibility": "public"}, user=alice
    )
    assert reply.status == 404 and reply.errcode == "M_NOT_FOUND"
    room = await hs.create_room(alice)
    reply = await hs.request(
        "PUT", f"directory/list/room/{room}", {"visibility": "secret"}, user=alice
    )
    assert reply.status == 400 and reply.errcode == "M_BAD_JSON"
    reply = await hs.request("PUT", f"directory/list/room/{room}", {"visibility": "public"})
    assert reply.status == 401
    for query in ("since=garbage", "limit=ten", "limit=-1", "server=elsewhere.example"):
        reply = await hs.request("GET", f"publicRooms?{query}")
        assert reply.status == 400 and reply.errcode == "M_INVALID_PARAM", (query, reply.body)
    reply = await hs.request("POST", "publicRooms", {"limit": "ten"}, user=alice)
    assert reply.status == 400 and reply.errcode == "M_BAD_JSON"
    reply = await hs.request("POST", "publicRooms", {})
    assert reply.status == 401


async def test_invite_only_rooms_are_not_listed_unless_world_readable(hs: MatrixClient) -> None:
    alice = await hs.register()
    word = _word()
    hidden = await hs.create_room(alice, visibility="public", preset="private_chat", name=word)
    readable = await hs.create_room(
        alice,
        visibility="public",
        preset="private_chat",
        name=word,
        initial_state=[
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "world_readable"},
            }
        ],
    )
    listed = (await _listed(hs, alice, word))["chunk"]
    assert [r["room_id"] for r in listed] == [readable]
    assert listed[0]["world_readable"] is True and listed[0]["join_rule"] == "invite"
    assert await hs.ok("GET", f"directory/list/room/{hidden}") == {"visibility": "public"}


async def test_room_types_filter_lists_spaces_apart_from_rooms(hs: MatrixClient) -> None:
    alice = await hs.register()
    word = _word()
    space = await hs.create_room(
        alice, visibility="public", name=word, creation_content={"type": "m.space"}
    )
    room = await hs.create_room(alice, visibility="public", name=word)

    async def listed(room_types: list[str | None] | None) -> set[str]:
        filter_: dict[str, Any] = {"generic_search_term": word}
        if room_types is not None:
            filter_["room_types"] = room_types
        page = await hs.ok("POST", "publicRooms", {"filter": filter_}, user=alice)
        return {r["room_id"] for r in page["chunk"]}

    assert await listed(None) == {space, room}
    assert await listed(["m.space"]) == {space}
    assert await listed([None]) == {room}
    assert await listed([None, "m.space"]) == {space, room}
    page = await _listed(hs, alice, word, filter={"room_types": ["m.space"]})
    assert [r.get("room_type") for r in page["chunk"]] == ["m.space"]


async def test_pages_chain_forwards_and_back_largest_rooms_first(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    hs = await start_app(dsn=fresh_dsn)
    owner = await hs.register()
    joiners = [await hs.register() for _ in range(4)]
    rooms = []
    for size in range(6):
        room = await hs.create_room(owner, visibility="public", name=f"room {size}")
        for joiner in joiners[: size % 5]:
            await hs.join(joiner, room)
        rooms.append((size % 5 + 1, room))
    expected = [room for _, room in sorted(rooms, key=lambda item: (-item[0], item[1]))]

    first = await hs.ok("GET", "publicRooms?limit=4")
    assert first["total_room_count_estimate"] == 6
    assert "prev_batch" not in first
    second = await hs.ok("GET", f"publicRooms?limit=4&since={first['next_batch']}")
    assert "next_batch" not in second
    seen = [r["room_id"] for r in first["chunk"] + second["chunk"]]
    assert seen == expected
    counts = [r["num_joined_members"] for r in first["chunk"] + second["chunk"]]
    assert counts == sorted(counts, reverse=True)
    back = await hs.ok(
        "POST", "publicRooms", {"limit": 4, "since": second["prev_batch"]}, user=owner
    )
    assert [r["room_id"] for r in back["chunk"]] == expected[:4]
    assert "prev_batch" not in back and back["next_batch"]
    # Anyone may read the directory; a client sending its token is served the same.
    assert (await hs.ok("GET", "publicRooms", user=owner))["chunk"] == (
        await hs.ok("GET", "publicRooms")
    )["chunk"]


async def test_directory_and_search_index_are_rebuilt_by_replay(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    hs = await start_app(dsn=fresh_dsn)
    alice = await hs.register()
    kept = await hs.create_room(alice, visibility="public", name="kept", topic="a topic")
    dropped = await hs.create_room(alice, visibility="public", name="dropped")
    await hs.ok("PUT", f"directory/list/room/{dropped}", {"visibility": "private"}, user=alice)
    gone = await hs.send(alice, kept, {"msgtype": "m.text", "body": "soon redacted"})
    await hs.send(alice, kept, {"msgtype": "m.text", "body": "stays"})
    await hs.ok("PUT", f"rooms/{kept}/redact/{gone}/r1", {}, user=alice)
    conn = await asyncpg.connect(fresh_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM room_directory") == 1
        # Two names, one topic and the message that stays.
        assert await conn.fetchval("SELECT count(*) FROM event_search") == 4
        assert (
            await conn.fetchval("SELECT count(*) FROM event_search WHERE event_id = $1", gone) == 0
        )
        result = await replay(conn)
    finally:
        await conn.close()
    mine = [d for d in result.differences if d.table in ("room_directory", "event_search")]
    assert mine == [], "\n".join(d.describe() for d in mine)
