"""Send-to-device messaging: addressed, idempotent, delivered in order, deleted once received."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from homeserver.api.to_device import TO_DEVICE
from tests.matrix import MatrixClient, User


async def _send(
    hs: MatrixClient,
    sender: User,
    messages: dict[str, dict[str, object]],
    txn_id: str | None = None,
    event_type: str = "m.room_key_request",
) -> None:
    txn_id = txn_id or secrets.token_hex(6)
    body = await hs.ok(
        "PUT", f"sendToDevice/{event_type}/{txn_id}", {"messages": messages}, user=sender
    )
    assert body == {}


async def test_message_reaches_the_named_device_only(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    other = await hs.login(bob)
    await _send(hs, alice, {bob.user_id: {bob.device_id: {"secret": 1}}})
    to_device = hs.app[TO_DEVICE]
    events, last = await to_device.pending(bob.user_id, bob.device_id, 0)
    assert events == [
        {"type": "m.room_key_request", "sender": alice.user_id, "content": {"secret": 1}}
    ]
    assert last > 0
    assert await to_device.pending(bob.user_id, other.device_id, 0) == ([], 0)


async def test_wildcard_reaches_every_device_of_the_user(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    other = await hs.login(bob)
    await _send(hs, alice, {bob.user_id: {"*": {"hello": "all"}}})
    to_device = hs.app[TO_DEVICE]
    for device in (bob.device_id, other.device_id):
        events, _ = await to_device.pending(bob.user_id, device, 0)
        assert [e["content"] for e in events] == [{"hello": "all"}]


async def test_named_device_gets_its_own_message_besides_a_wildcard(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    other = await hs.login(bob)
    await _send(hs, alice, {bob.user_id: {"*": {"n": "all"}, other.device_id: {"n": "mine"}}})
    to_device = hs.app[TO_DEVICE]
    assert [
        e["content"] for e in (await to_device.pending(bob.user_id, other.device_id, 0))[0]
    ] == [{"n": "mine"}]
    assert [e["content"] for e in (await to_device.pending(bob.user_id, bob.device_id, 0))[0]] == [
        {"n": "all"}
    ]


async def test_retried_transaction_is_delivered_once(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    for _ in range(3):
        await _send(hs, alice, {bob.user_id: {bob.device_id: {"once": True}}}, txn_id="t1")
    events, _ = await hs.app[TO_DEVICE].pending(bob.user_id, bob.device_id, 0)
    assert len(events) == 1


async def test_same_transaction_id_from_another_device_is_a_new_message(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    laptop = await hs.login(alice)
    await _send(hs, alice, {bob.user_id: {bob.device_id: {"n": 1}}}, txn_id="same")
    await _send(hs, laptop, {bob.user_id: {bob.device_id: {"n": 2}}}, txn_id="same")
    events, _ = await hs.app[TO_DEVICE].pending(bob.user_id, bob.device_id, 0)
    assert [e["content"] for e in events] == [{"n": 1}, {"n": 2}]


async def test_unknown_users_and_devices_are_skipped_silently(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    await _send(
        hs,
        alice,
        {
            "@nobody:localhost": {"*": {"x": 1}},
            "@someone:elsewhere.example": {"DEV": {"x": 1}},
            bob.user_id: {"NOSUCHDEVICE": {"x": 1}, bob.device_id: {"x": 2}},
        },
    )
    events, _ = await hs.app[TO_DEVICE].pending(bob.user_id, bob.device_id, 0)
    assert [e["content"] for e in events] == [{"x": 2}]


async def test_acknowledged_messages_are_deleted(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    await _send(hs, alice, {bob.user_id: {bob.device_id: {"n": 1}}})
    to_device = hs.app[TO_DEVICE]
    _, last = await to_device.pending(bob.user_id, bob.device_id, 0)
    await _send(hs, alice, {bob.user_id: {bob.device_id: {"n": 2}}})
    await to_device.acknowledge(bob.user_id, bob.device_id, last)
    events, _ = await to_device.pending(bob.user_id, bob.device_id, 0)
    assert [e["content"] for e in events] == [{"n": 2}]


async def test_pending_is_batched_in_order_and_resumes_after_the_last(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    for n in range(5):
        await _send(hs, alice, {bob.user_id: {bob.device_id: {"n": n}}})
    to_device = hs.app[TO_DEVICE]
    first, last = await to_device.pending(bob.user_id, bob.device_id, 0, limit=3)
    rest, end = await to_device.pending(bob.user_id, bob.device_id, last, limit=3)
    assert [e["content"]["n"] for e in first + rest] == [0, 1, 2, 3, 4]
    assert await to_device.pending(bob.user_id, bob.device_id, end) == ([], end)


async def test_concurrent_sends_to_one_device_all_arrive(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    await asyncio.gather(
        *(_send(hs, alice, {bob.user_id: {bob.device_id: {"n": n}}}) for n in range(20))
    )
    events, _ = await hs.app[TO_DEVICE].pending(bob.user_id, bob.device_id, 0)
    assert sorted(e["content"]["n"] for e in events) == list(range(20))


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"messages": []},
        {"messages": {"@u:localhost": "x"}},
        {"messages": {"@u:localhost": {"D": 1}}},
    ],
)
async def test_malformed_messages_are_rejected(hs: MatrixClient, body: dict[str, object]) -> None:
    alice = await hs.register()
    reply = await hs.request("PUT", "sendToDevice/m.test/txn", body, user=alice)
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")


async def test_sending_needs_an_access_token(hs: MatrixClient) -> None:
    reply = await hs.request("PUT", "sendToDevice/m.test/txn", {"messages": {}})
    assert reply.status == 401


async def test_message_wakes_the_recipients_long_poll(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    first = await hs.ok("GET", "sync", user=bob)
    poll = asyncio.create_task(
        hs.ok("GET", f"sync?since={first['next_batch']}&timeout=10000", user=bob)
    )
    await asyncio.sleep(0.2)
    await _send(hs, alice, {bob.user_id: {bob.device_id: {"wake": True}}})
    body = await asyncio.wait_for(poll, 5)
    assert [e["content"] for e in body["to_device"]["events"]] == [{"wake": True}]
    # Syncing on from that response acknowledges it: it is not delivered twice.
    again = await hs.ok("GET", f"sync?since={body['next_batch']}&timeout=0", user=bob)
    assert again.get("to_device", {}).get("events", []) == []
