"""Read receipts and read markers: what a client sends, and what sync will serve."""

from __future__ import annotations

import pytest

from homeserver.api.account_data import ACCOUNT_DATA
from homeserver.api.app_keys import APPENDER, POOL
from homeserver.api.receipts import RECEIPTS
from homeserver.events import types
from homeserver.events.model import Draft
from homeserver.store import events as event_store
from tests.matrix import MatrixClient, User

EVERYTHING = 2**62


async def _position(hs: MatrixClient) -> int:
    async with hs.app[POOL].acquire() as conn:
        return await event_store.last_position(conn)


def _in_thread(root: str) -> dict[str, object]:
    return {
        "msgtype": "m.text",
        "body": "x",
        "m.relates_to": {"rel_type": "m.thread", "event_id": root},
    }


async def _receipt(
    hs: MatrixClient,
    user: User,
    room: str,
    event_id: str,
    kind: str = "m.read",
    body: object = None,
) -> tuple[int, object]:
    reply = await hs.request(
        "POST",
        f"rooms/{room}/receipt/{kind}/{event_id}",
        body if body is not None else {},
        user=user,
    )
    return reply.status, reply.body


async def test_read_receipt_is_shown_to_other_members(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    event = await hs.send(alice, room)
    assert await _receipt(hs, bob, room, event) == (200, {})
    seen = await hs.app[RECEIPTS].receipts_for_sync(alice.user_id, [room], None, EVERYTHING)
    receipt = seen[room][event]["m.read"][bob.user_id]
    assert isinstance(receipt["ts"], int) and "thread_id" not in receipt


async def test_receipt_without_body_is_accepted(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    event = await hs.send(alice, room)
    reply = await hs.request("POST", f"rooms/{room}/receipt/m.read/{event}", user=bob)
    assert reply.status == 200, reply.body


async def test_unknown_receipt_type_is_rejected(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    event = await hs.send(alice, room)
    status, body = await _receipt(hs, bob, room, event, kind="m.seen")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")  # type: ignore[index]


async def test_user_outside_the_room_cannot_send_a_receipt(hs: MatrixClient) -> None:
    alice, _, room = await hs.room_of_two()
    event = await hs.send(alice, room)
    stranger = await hs.register()
    status, body = await _receipt(hs, stranger, room, event)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")  # type: ignore[index]


async def test_user_who_left_cannot_send_a_receipt(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    event = await hs.send(alice, room)
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=bob)
    status, _ = await _receipt(hs, bob, room, event)
    assert status == 403


async def test_receipt_for_unknown_event_is_not_found(hs: MatrixClient) -> None:
    _, bob, room = await hs.room_of_two()
    status, body = await _receipt(hs, bob, room, "$nosuchevent")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")  # type: ignore[index]


async def test_receipt_for_event_of_another_room_is_not_found(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    other = await hs.create_room(alice)
    elsewhere = await hs.send(alice, other)
    status, _ = await _receipt(hs, bob, room, elsewhere)
    assert status == 404


@pytest.mark.parametrize("thread_id", ["", 5, None])
async def test_malformed_thread_id_is_rejected(hs: MatrixClient, thread_id: object) -> None:
    alice, bob, room = await hs.room_of_two()
    event = await hs.send(alice, room)
    status, body = await _receipt(hs, bob, room, event, body={"thread_id": thread_id})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")  # type: ignore[index]


async def test_fully_read_marker_cannot_be_threaded(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    event = await hs.send(alice, room)
    status, _ = await _receipt(hs, bob, room, event, "m.fully_read", {"thread_id": "main"})
    assert status == 400


async def test_threaded_receipts_are_kept_apart_per_thread(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    root = await hs.send(alice, room)
    reply = await hs.send(alice, room, _in_thread(root))
    later = await hs.send(alice, room)
    assert (await _receipt(hs, bob, room, root, body={"thread_id": "main"}))[0] == 200
    assert (await _receipt(hs, bob, room, reply, body={"thread_id": root}))[0] == 200
    assert (await _receipt(hs, bob, room, later))[0] == 200
    seen = await hs.app[RECEIPTS].receipts_for_sync(alice.user_id, [room], None, EVERYTHING)
    assert seen[room][root]["m.read"][bob.user_id]["thread_id"] == "main"
    assert seen[room][reply]["m.read"][bob.user_id]["thread_id"] == root
    assert "thread_id" not in seen[room][later]["m.read"][bob.user_id]


async def test_threaded_receipt_must_name_the_events_thread(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    root = await hs.send(alice, room)
    reply = await hs.send(alice, room, _in_thread(root))
    unrelated = await hs.send(alice, room)
    status, body = await _receipt(hs, bob, room, reply, body={"thread_id": "main"})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")  # type: ignore[index]
    status, _ = await _receipt(hs, bob, room, unrelated, body={"thread_id": root})
    assert status == 400


async def test_receipt_never_moves_backwards(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    first = await hs.send(alice, room)
    second = await hs.send(alice, room)
    await _receipt(hs, bob, room, second)
    assert await _receipt(hs, bob, room, first) == (200, {})
    seen = await hs.app[RECEIPTS].receipts_for_sync(alice.user_id, [room], None, EVERYTHING)
    assert list(seen[room]) == [second]


async def test_private_receipt_is_seen_only_by_its_owner(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    event = await hs.send(alice, room)
    assert (await _receipt(hs, bob, room, event, "m.read.private"))[0] == 200
    receipts = hs.app[RECEIPTS]
    assert await receipts.receipts_for_sync(alice.user_id, [room], None, EVERYTHING) == {}
    own = await receipts.receipts_for_sync(bob.user_id, [room], None, EVERYTHING)
    assert bob.user_id in own[room][event]["m.read.private"]


async def test_incremental_receipts_hold_only_what_changed_since(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    first = await hs.send(alice, room)
    await _receipt(hs, bob, room, first)
    since = await _position(hs)
    second = await hs.send(alice, room)
    await _receipt(hs, alice, room, second)
    until = await _position(hs)
    receipts = hs.app[RECEIPTS]
    changed = await receipts.receipts_for_sync(bob.user_id, [room], since, until)
    assert changed == {
        room: {second: {"m.read": {alice.user_id: changed[room][second]["m.read"][alice.user_id]}}}
    }
    assert await receipts.receipts_for_sync(bob.user_id, [room], until, until) == {}
    everything = await receipts.receipts_for_sync(bob.user_id, [room], None, until)
    assert set(everything[room]) == {first, second}


async def test_fully_read_receipt_sets_the_rooms_read_marker(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    event = await hs.send(alice, room)
    assert (await _receipt(hs, bob, room, event, "m.fully_read"))[0] == 200
    data = await hs.app[ACCOUNT_DATA].room_account_data_for_sync(bob.user_id, None, EVERYTHING)
    assert data == {room: [{"type": "m.fully_read", "content": {"event_id": event}}]}
    # The marker is account data, never an m.receipt.
    assert await hs.app[RECEIPTS].receipts_for_sync(alice.user_id, [room], None, EVERYTHING) == {}


async def test_read_markers_set_marker_and_both_receipts(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    first = await hs.send(alice, room)
    second = await hs.send(alice, room)
    await hs.ok(
        "POST",
        f"rooms/{room}/read_markers",
        {"m.fully_read": first, "m.read": second, "m.read.private": second},
        user=bob,
    )
    receipts = hs.app[RECEIPTS]
    data = await hs.app[ACCOUNT_DATA].room_account_data_for_sync(bob.user_id, None, EVERYTHING)
    assert data[room] == [{"type": "m.fully_read", "content": {"event_id": first}}]
    own = await receipts.receipts_for_sync(bob.user_id, [room], None, EVERYTHING)
    assert set(own[room][second]) == {"m.read", "m.read.private"}


async def test_read_markers_with_an_unknown_event_change_nothing(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    event = await hs.send(alice, room)
    reply = await hs.request(
        "POST",
        f"rooms/{room}/read_markers",
        {"m.fully_read": event, "m.read": "$missing"},
        user=bob,
    )
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    assert (
        await hs.app[ACCOUNT_DATA].room_account_data_for_sync(bob.user_id, None, EVERYTHING) == {}
    )


async def test_read_markers_need_membership(hs: MatrixClient) -> None:
    alice, _, room = await hs.room_of_two()
    event = await hs.send(alice, room)
    stranger = await hs.register()
    reply = await hs.request(
        "POST", f"rooms/{room}/read_markers", {"m.fully_read": event}, user=stranger
    )
    assert reply.status == 403


async def test_fully_read_marker_never_moves_backwards(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    first = await hs.send(alice, room)
    second = await hs.send(alice, room)
    await hs.ok("POST", f"rooms/{room}/read_markers", {"m.fully_read": second}, user=bob)
    await hs.ok("POST", f"rooms/{room}/read_markers", {"m.fully_read": first}, user=bob)
    data = await hs.app[ACCOUNT_DATA].room_account_data_for_sync(bob.user_id, None, EVERYTHING)
    assert data[room] == [{"type": "m.fully_read", "content": {"event_id": second}}]


async def test_global_account_data_is_served_apart_from_room_account_data(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    event = await hs.send(alice, room)
    await hs.ok("POST", f"rooms/{room}/read_markers", {"m.fully_read": event}, user=bob)
    await hs.app[APPENDER].append(
        Draft(
            bob.user_id,
            bob.user_id,
            types.ACCOUNT_DATA,
            {"room_id": "", "type": "m.direct", "content": {alice.user_id: [room]}},
            state_key='["", "m.direct"]',
        )
    )
    account_data = hs.app[ACCOUNT_DATA]
    assert await account_data.global_account_data_for_sync(bob.user_id, None, EVERYTHING) == [
        {"type": "m.direct", "content": {alice.user_id: [room]}}
    ]
    assert list(await account_data.room_account_data_for_sync(bob.user_id, None, EVERYTHING)) == [
        room
    ]
