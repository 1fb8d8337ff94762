"""Events served pre-encoded by the incremental /sync fast path look exactly as
`client_event` serves them, and only the sending device sees its transaction ID."""

from __future__ import annotations

import json
from typing import Any

from homeserver.events.client_format import client_event
from homeserver.events.model import Event
from homeserver.sync.encoding import EncodedEvent, encode_body
from tests.matrix import MatrixClient, User


def _event(**pdu: Any) -> Event:
    base = {
        "content": {"msgtype": "m.text", "body": "héllo \u2028", "unsigned": {"age": 0}},
        "room_id": "!r:localhost",
        "sender": "@a:localhost",
        "type": "m.room.message",
        "origin_server_ts": 1_000,
        "depth": 3,
        "prev_events": [],
        "auth_events": [],
    }
    return Event.from_pdu("$e", {**base, **pdu}, 7)


def test_an_encoded_event_is_the_client_event_with_its_keys_in_order() -> None:
    for event in (
        _event(),
        _event(type="m.room.member", state_key="@a:localhost", content={"membership": "join"}),
        _event(type="m.room.redaction", content={"redacts": "$x"}),
    ):
        for txn in (None, 'tx"1'):
            served = json.loads(encode_body({"e": EncodedEvent(event).serve(1_500, txn)}))["e"]
            expected = client_event(event, transaction_id=txn, now_ms=1_500, include_room_id=False)
            assert served == expected
            assert list(served) == list(expected)


def test_a_body_orjson_refuses_falls_back_to_the_standard_library() -> None:
    body = {"e": EncodedEvent(_event()).serve(1_000, None), "big": 2**70}
    decoded = json.loads(encode_body(body))
    assert decoded["big"] == 2**70
    assert decoded["e"]["unsigned"] == {"age": 0}


async def _timeline(hs: MatrixClient, user: User, since: str, room: str) -> list[Any]:
    body = await hs.sync(user, since)
    return list(body["rooms"]["join"][room]["timeline"]["events"])


async def test_only_the_sending_device_sees_its_transaction_id_in_incremental_sync(
    hs: MatrixClient,
) -> None:
    alice, bob = await hs.register(), await hs.register()
    laptop = await hs.login(alice)
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    since = {who.token: str((await hs.sync(who))["next_batch"]) for who in (alice, laptop, bob)}
    event_id = await hs.send(alice, room, {"msgtype": "m.text", "body": "hi"}, txn_id="t-42")
    served = {
        who.token: next(
            e for e in await _timeline(hs, who, since[who.token], room) if e["event_id"] == event_id
        )
        for who in (alice, laptop, bob)
    }
    assert served[alice.token]["unsigned"]["transaction_id"] == "t-42"
    assert "transaction_id" not in served[laptop.token]["unsigned"]
    assert "transaction_id" not in served[bob.token]["unsigned"]
    for one in served.values():
        assert one["content"] == {"msgtype": "m.text", "body": "hi"}
        assert one["sender"] == alice.user_id
        assert "room_id" not in one
