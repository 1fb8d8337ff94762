"""Account data, global and per room, and room tags: stored, read back, and shown in sync."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.matrix import MatrixClient


def _global(body: dict[str, Any]) -> dict[str, Any]:
    return {e["type"]: e["content"] for e in body["account_data"]["events"]}


def _per_room(body: dict[str, Any], room: str) -> dict[str, Any]:
    section = body["rooms"]["join"].get(room, {"account_data": {"events": []}})
    return {e["type"]: e["content"] for e in section["account_data"]["events"]}


async def test_global_account_data_is_read_back_and_shown_in_sync(hs: MatrixClient) -> None:
    alice = await hs.register()
    path = f"user/{alice.user_id}/account_data/org.example.settings"
    await hs.ok("PUT", path, {"theme": "dark", "font_size": 14}, user=alice)
    assert await hs.ok("GET", path, user=alice) == {"theme": "dark", "font_size": 14}
    first = await hs.sync(alice)
    assert _global(first)["org.example.settings"] == {"theme": "dark", "font_size": 14}

    await hs.ok("PUT", path, {"theme": "light"}, user=alice)
    second = await hs.sync(alice, first["next_batch"])
    assert _global(second) == {"org.example.settings": {"theme": "light"}}
    assert _global(await hs.sync(alice, second["next_batch"])) == {}


async def test_room_account_data_is_read_back_and_shown_in_that_rooms_sync(
    hs: MatrixClient,
) -> None:
    alice = await hs.register()
    room, other = await hs.create_room(alice), await hs.create_room(alice)
    since = (await hs.sync(alice))["next_batch"]
    path = f"user/{alice.user_id}/rooms/{room}/account_data/org.example.draft"
    await hs.ok("PUT", path, {"text": "half a thought"}, user=alice)
    assert await hs.ok("GET", path, user=alice) == {"text": "half a thought"}
    body = await hs.sync(alice, since)
    assert _per_room(body, room) == {"org.example.draft": {"text": "half a thought"}}
    assert _per_room(body, other) == {}
    assert _global(body) == {}
    reply = await hs.request(
        "GET", f"user/{alice.user_id}/rooms/{other}/account_data/org.example.draft", user=alice
    )
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")


async def test_nobody_reads_or_writes_another_users_account_data(hs: MatrixClient) -> None:
    alice, mallory = await hs.register(), await hs.register()
    room = await hs.create_room(alice)
    secret = f"user/{alice.user_id}/account_data/org.example.secret"
    await hs.ok("PUT", secret, {"pin": "1234"}, user=alice)
    paths = [
        secret,
        f"user/{alice.user_id}/rooms/{room}/account_data/org.example.secret",
        f"user/{alice.user_id}/rooms/{room}/tags",
    ]
    for path in paths:
        reply = await hs.request("GET", path, user=mallory)
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN"), path
        assert "1234" not in str(reply.body)
    for path in paths[:2]:
        reply = await hs.request("PUT", path, {"pin": "0000"}, user=mallory)
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN"), path
    reply = await hs.request(
        "PUT", f"user/{alice.user_id}/rooms/{room}/tags/u.evil", {}, user=mallory
    )
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    assert await hs.ok("GET", secret, user=alice) == {"pin": "1234"}
    assert "org.example.secret" not in _global(await hs.sync(mallory))


async def test_unknown_account_data_is_not_found(hs: MatrixClient) -> None:
    alice = await hs.register()
    reply = await hs.request("GET", f"user/{alice.user_id}/account_data/org.nothing", user=alice)
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")


@pytest.mark.parametrize("data_type", ["m.fully_read", "m.push_rules"])
async def test_server_kept_types_cannot_be_set_through_account_data(
    hs: MatrixClient, data_type: str
) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    for path in (
        f"user/{alice.user_id}/account_data/{data_type}",
        f"user/{alice.user_id}/rooms/{room}/account_data/{data_type}",
    ):
        reply = await hs.request("PUT", path, {"event_id": "$x"}, user=alice)
        assert (reply.status, reply.errcode) == (405, "M_BAD_JSON"), path


async def test_push_rules_read_as_account_data_are_the_users_rules(hs: MatrixClient) -> None:
    alice = await hs.register()
    rules = await hs.ok("GET", f"user/{alice.user_id}/account_data/m.push_rules", user=alice)
    assert rules == await hs.ok("GET", "pushrules/", user=alice)


async def test_account_data_bodies_must_be_json_objects(hs: MatrixClient) -> None:
    alice = await hs.register()
    path = f"user/{alice.user_id}/account_data/org.example.x"
    reply = await hs.request("PUT", path, raw=b"not json", user=alice)
    assert (reply.status, reply.errcode) == (400, "M_NOT_JSON")
    reply = await hs.request("PUT", path, [1, 2, 3], user=alice)
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")
    reply = await hs.request(
        "PUT", f"user/{alice.user_id}/rooms/not-a-room/account_data/org.example.x", {}, user=alice
    )
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")
    reply = await hs.request("GET", "user/" + alice.user_id + "/account_data/x")
    assert (reply.status, reply.errcode) == (401, "M_MISSING_TOKEN")


@pytest.mark.parametrize(
    "content",
    [{"volume": 0.5}, {"nested": [{"ratio": 1.25}]}, {"big": 2**53}, {"small": -(2**53)}],
    ids=["float", "nested float", "integer above 2^53-1", "integer below -(2^53-1)"],
)
async def test_account_data_holding_what_no_event_may_hold_is_bad_json(
    hs: MatrixClient, content: dict[str, Any]
) -> None:
    # Account data is a signed fact in the log: canonical JSON, as every event.
    alice = await hs.register()
    room = await hs.create_room(alice)
    for path in (
        f"user/{alice.user_id}/account_data/org.example.settings",
        f"user/{alice.user_id}/rooms/{room}/account_data/org.example.settings",
    ):
        reply = await hs.request("PUT", path, content, user=alice)
        assert (reply.status, reply.errcode) == (400, "M_BAD_JSON"), path
        assert (await hs.request("GET", path, user=alice)).status == 404


async def test_a_tag_holds_no_float_but_its_order(hs: MatrixClient) -> None:
    # The spec's tag order is a number between 0 and 1: a fraction is what clients send.
    alice = await hs.register()
    room = await hs.create_room(alice)
    tags = f"user/{alice.user_id}/rooms/{room}/tags"
    reply = await hs.request("PUT", f"{tags}/u.x", {"order": 0.5, "weight": 0.5}, user=alice)
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")
    await hs.ok("PUT", f"{tags}/u.x", {"order": 0.5}, user=alice)
    assert await hs.ok("GET", tags, user=alice) == {"tags": {"u.x": {"order": 0.5}}}


async def test_m_direct_is_kept_and_shown_in_sync(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, is_direct=True, invite=[bob.user_id])
    direct = {bob.user_id: [room]}
    await hs.ok("PUT", f"user/{alice.user_id}/account_data/m.direct", direct, user=alice)
    assert await hs.ok("GET", f"user/{alice.user_id}/account_data/m.direct", user=alice) == direct
    assert _global(await hs.sync(alice))["m.direct"] == direct


async def test_room_tags_are_added_listed_and_removed(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    tags = f"user/{alice.user_id}/rooms/{room}/tags"
    assert await hs.ok("GET", tags, user=alice) == {"tags": {}}
    since = (await hs.sync(alice))["next_batch"]
    await hs.ok("PUT", f"{tags}/m.favourite", {"order": 0.25}, user=alice)
    await hs.ok("PUT", f"{tags}/u.work", {}, user=alice)
    assert await hs.ok("GET", tags, user=alice) == {
        "tags": {"m.favourite": {"order": 0.25}, "u.work": {}}
    }
    body = await hs.sync(alice, since)
    assert _per_room(body, room)["m.tag"] == {
        "tags": {"m.favourite": {"order": 0.25}, "u.work": {}}
    }

    await hs.ok("DELETE", f"{tags}/m.favourite", user=alice)
    await hs.ok("DELETE", f"{tags}/never.set", user=alice)
    assert await hs.ok("GET", tags, user=alice) == {"tags": {"u.work": {}}}
    account_data = f"user/{alice.user_id}/rooms/{room}/account_data/m.tag"
    assert await hs.ok("GET", account_data, user=alice) == {"tags": {"u.work": {}}}
    after = await hs.sync(alice, body["next_batch"])
    assert _per_room(after, room)["m.tag"] == {"tags": {"u.work": {}}}


async def test_bad_tags_are_refused(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    tags = f"user/{alice.user_id}/rooms/{room}/tags"
    reply = await hs.request("PUT", f"{tags}/u.x", {"order": "first"}, user=alice)
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")
    reply = await hs.request("PUT", f"{tags}/{'t' * 256}", {}, user=alice)
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")
    reply = await hs.request("PUT", f"{tags}/u.x", raw=b"[]", user=alice)
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")
    assert await hs.ok("GET", tags, user=alice) == {"tags": {}}


async def test_concurrent_tag_changes_lose_none(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    tags = f"user/{alice.user_id}/rooms/{room}/tags"
    names = [f"u.tag{n}" for n in range(8)]
    await asyncio.gather(*(hs.ok("PUT", f"{tags}/{name}", {}, user=alice) for name in names))
    assert set((await hs.ok("GET", tags, user=alice))["tags"]) == set(names)
