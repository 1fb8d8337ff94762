"""GET /v1/rooms/{roomId}/relations/{eventId}: the edits, reactions and thread replies of
one message, as a client lists them (edit history, who reacted, a thread)."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote, urlencode

from tests.matrix import MatrixClient, Reply, User

V1 = "/_matrix/client/v1"


async def _relations(
    hs: MatrixClient, user: User, room: str, event_id: str, *path: str, **params: Any
) -> Reply:
    suffix = "".join("/" + quote(part, safe="") for part in path)
    query = f"?{urlencode(params)}" if params else ""
    url = f"{V1}/rooms/{quote(room)}/relations/{quote(event_id)}{suffix}{query}"
    return await hs.request("GET", url, user=user)


async def _listed(
    hs: MatrixClient, user: User, room: str, event_id: str, *path: str, **params: Any
) -> dict[str, Any]:
    reply = await _relations(hs, user, room, event_id, *path, **params)
    assert reply.status == 200, reply
    body: dict[str, Any] = reply.body
    return body


async def _edit(hs: MatrixClient, user: User, room: str, target: str, text: str) -> str:
    content = {
        "msgtype": "m.text",
        "body": f"* {text}",
        "m.new_content": {"msgtype": "m.text", "body": text},
        "m.relates_to": {"rel_type": "m.replace", "event_id": target},
    }
    return await hs.send(user, room, content)


async def _react(hs: MatrixClient, user: User, room: str, target: str, key: str) -> str:
    content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}}
    return await hs.send(user, room, content, event_type="m.reaction")


async def _reply_in_thread(hs: MatrixClient, user: User, room: str, root: str, text: str) -> str:
    content = {
        "msgtype": "m.text",
        "body": text,
        "m.relates_to": {"rel_type": "m.thread", "event_id": root},
    }
    return await hs.send(user, room, content)


def _ids(body: dict[str, Any]) -> list[str]:
    return [event["event_id"] for event in body["chunk"]]


async def _chat(hs: MatrixClient) -> tuple[User, User, str, str]:
    alice, bob = await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    root = await hs.send(alice, room, {"msgtype": "m.text", "body": "lunch?"})
    return alice, bob, room, root


async def test_every_relation_is_listed_newest_first(hs: MatrixClient) -> None:
    alice, bob, room, root = await _chat(hs)
    edit = await _edit(hs, alice, room, root, "lunch at noon?")
    reaction = await _react(hs, bob, room, root, "👍")
    reply = await _reply_in_thread(hs, bob, room, root, "yes")
    await hs.send(alice, room, {"msgtype": "m.text", "body": "unrelated"})
    body = await _listed(hs, bob, room, root)
    assert _ids(body) == [reply, reaction, edit]
    assert "next_batch" not in body
    assert body["chunk"][0]["content"]["body"] == "yes"
    assert body["chunk"][0]["room_id"] == room


async def test_relations_are_chosen_by_rel_type_and_event_type(hs: MatrixClient) -> None:
    alice, bob, room, root = await _chat(hs)
    first = await _edit(hs, alice, room, root, "lunch at noon?")
    second = await _edit(hs, alice, room, root, "lunch at one?")
    await _react(hs, bob, room, root, "👍")
    thread = await _reply_in_thread(hs, bob, room, root, "yes")
    assert _ids(await _listed(hs, bob, room, root, "m.replace")) == [second, first]
    assert _ids(await _listed(hs, bob, room, root, "m.thread", "m.room.message")) == [thread]
    assert _ids(await _listed(hs, bob, room, root, "m.annotation", "m.room.message")) == []
    assert len(_ids(await _listed(hs, bob, room, root, "m.annotation", "m.reaction"))) == 1


async def test_pages_chain_without_gap_or_duplicate_both_ways(hs: MatrixClient) -> None:
    alice, bob, room, root = await _chat(hs)
    replies = [await _reply_in_thread(hs, bob, room, root, f"r{n}") for n in range(7)]
    for direction, expected in (("b", replies[::-1]), ("f", replies)):
        seen: list[str] = []
        params: dict[str, Any] = {"limit": 3, "dir": direction}
        while True:
            body = await _listed(hs, alice, room, root, "m.thread", **params)
            seen += _ids(body)
            if "from" in params:
                assert body["prev_batch"] == params["from"]
            if "next_batch" not in body:
                break
            params["from"] = body["next_batch"]
        assert seen == expected, direction


async def test_a_redacted_relation_is_no_longer_listed(hs: MatrixClient) -> None:
    alice, bob, room, root = await _chat(hs)
    kept = await _react(hs, alice, room, root, "🎉")
    withdrawn = await _react(hs, bob, room, root, "👎")
    await hs.ok("PUT", f"rooms/{room}/redact/{withdrawn}/{secrets.token_hex(4)}", {}, user=bob)
    assert _ids(await _listed(hs, alice, room, root, "m.annotation")) == [kept]


async def test_an_ignored_users_relations_are_left_out(hs: MatrixClient) -> None:
    alice, bob, room, root = await _chat(hs)
    troll = await hs.register()
    await hs.join(troll, room)
    await _react(hs, troll, room, root, "🤡")
    kind = await _react(hs, bob, room, root, "❤️")
    await hs.ok(
        "PUT",
        f"user/{quote(alice.user_id)}/account_data/m.ignored_user_list",
        {"ignored_users": {troll.user_id: {}}},
        user=alice,
    )
    assert _ids(await _listed(hs, alice, room, root)) == [kind]


async def test_relations_of_an_event_one_may_not_see_are_not_found(hs: MatrixClient) -> None:
    alice, bob, room, root = await _chat(hs)
    await _reply_in_thread(hs, bob, room, root, "yes")
    # A stranger to the room is refused, as by /messages.
    stranger = await hs.register()
    reply = await _relations(hs, stranger, room, root)
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    # Unknown events, and events of another room, are not found.
    other = await hs.create_room(alice)
    for event_id, in_room in (("$nope", room), (root, other)):
        reply = await _relations(hs, alice, in_room, event_id)
        assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    # A member who joined after the event, in a room that hides history from before a join.
    private = await hs.create_room(alice, preset="private_chat")
    await hs.ok(
        "PUT",
        f"rooms/{private}/state/m.room.history_visibility/",
        {"history_visibility": "joined"},
        user=alice,
    )
    hidden = await hs.send(alice, private, {"msgtype": "m.text", "body": "before you"})
    await hs.ok("POST", f"rooms/{private}/invite", {"user_id": bob.user_id}, user=alice)
    await hs.join(bob, private)
    await _react(hs, alice, private, hidden, "🤫")
    reply = await _relations(hs, bob, private, hidden)
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    assert len(_ids(await _listed(hs, alice, private, hidden))) == 1


async def test_bad_pagination_parameters_are_refused(hs: MatrixClient) -> None:
    alice, _, room, root = await _chat(hs)
    for params, errcode in (
        ({"dir": "up"}, "M_INVALID_PARAM"),
        ({"limit": "many"}, "M_INVALID_PARAM"),
        ({"from": "not-a-token"}, "M_INVALID_PARAM"),
    ):
        reply = await _relations(hs, alice, room, root, **params)
        assert (reply.status, reply.errcode) == (400, errcode), (params, reply)
