"""Interop: the real matrix-nio AsyncClient against the running homeserver.

No crypto, no store, no /sync: each test drives nio's plain request methods and
checks that nio parses what the server answers into its success response types.
Every request nio sends is recorded, so a failing call shows the exact request
and the server's answer.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import nio  # type: ignore[import-untyped]
import pytest
from aiohttp import ClientResponse

from tests.matrix import MatrixClient

PASSWORD = "correct horse battery staple"

R = TypeVar("R")


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    body: Any
    status: int
    answer: str

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.body!r} -> {self.status} {self.answer}"


class RecordingClient(nio.AsyncClient):  # type: ignore[misc]
    """An AsyncClient that keeps every request it sends and the server's answer."""

    def __init__(self, homeserver: str, user: str = "") -> None:
        super().__init__(
            homeserver,
            user=user,
            store_path="",
            config=nio.AsyncClientConfig(encryption_enabled=False, store_sync_tokens=False),
        )
        self.exchanges: list[Exchange] = []

    async def send(
        self,
        method: str,
        path: str,
        data: Any = None,
        headers: dict[str, str] | None = None,
        trace_context: Any | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> ClientResponse:
        response: ClientResponse = await super().send(
            method, path, data, headers, trace_context, timeout
        )
        # Read as bytes (aiohttp caches the body for nio's own read): downloads
        # are binary and long, so the answer is kept decoded and shortened.
        raw = await response.read()
        answer = raw[:2000].decode("utf-8", "replace")
        body = data if isinstance(data, str | bytes | dict | None) else type(data).__name__
        self.exchanges.append(Exchange(method, path, body, response.status, answer))
        return response


def expect(client: RecordingClient, resp: object, kind: type[R]) -> R:
    """Asserts nio parsed the answer as `kind`; otherwise prints the request and answer."""
    if not isinstance(resp, kind):
        last = client.exchanges[-1] if client.exchanges else "no request recorded"
        message = f"expected {kind.__name__}, got {resp!r}\n  last exchange: {last}"
        print(message)
        pytest.fail(message)
    return resp


ClientFactory = Callable[[str], Awaitable[RecordingClient]]


@asynccontextmanager
async def recording_clients(hs: MatrixClient) -> AsyncIterator[ClientFactory]:
    """Makes RecordingClients on the running homeserver; closes them all at the end."""
    made: list[RecordingClient] = []

    async def make(user: str = "") -> RecordingClient:
        client = RecordingClient(hs.base_url, user)
        made.append(client)
        return client

    try:
        yield make
    finally:
        for client in made:
            await client.close()


@pytest.fixture
async def nio_clients(hs: MatrixClient) -> AsyncIterator[ClientFactory]:
    async with recording_clients(hs) as make:
        yield make


async def register(make: ClientFactory, prefix: str) -> RecordingClient:
    """Registers a new account through nio (auth m.login.dummy); returns its client."""
    client = await make("")
    localpart = f"{prefix}_{secrets.token_hex(4)}"
    resp = expect(client, await client.register(localpart, PASSWORD), nio.RegisterResponse)
    assert resp.user_id.startswith(f"@{localpart}:")
    assert resp.access_token and resp.device_id
    assert client.user_id == resp.user_id
    assert client.access_token == resp.access_token
    return client


async def login(make: ClientFactory, user_id: str) -> RecordingClient:
    """Logs in with the password on a fresh AsyncClient."""
    client = await make(user_id)
    resp = expect(
        client, await client.login(PASSWORD, device_name="nio interop"), nio.LoginResponse
    )
    assert resp.user_id == user_id
    assert resp.access_token and resp.device_id
    assert client.logged_in
    return client


async def test_message_redaction_and_logout(nio_clients: ClientFactory) -> None:
    alice_reg = await register(nio_clients, "alice")
    bob_reg = await register(nio_clients, "bob")
    alice = await login(nio_clients, alice_reg.user_id)
    bob = await login(nio_clients, bob_reg.user_id)
    assert alice.access_token != alice_reg.access_token

    created = expect(
        alice,
        await alice.room_create(name="nio interop", invite=[bob.user_id]),
        nio.RoomCreateResponse,
    )
    room_id = created.room_id
    assert room_id.startswith("!")

    joined = expect(bob, await bob.join(room_id), nio.JoinResponse)
    assert joined.room_id == room_id

    sent = expect(
        alice,
        await alice.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "hello bob"}
        ),
        nio.RoomSendResponse,
    )
    assert sent.event_id.startswith("$")
    assert sent.room_id == room_id

    got = expect(bob, await bob.room_get_event(room_id, sent.event_id), nio.RoomGetEventResponse)
    assert isinstance(got.event, nio.RoomMessageText), got.event
    assert got.event.body == "hello bob"
    assert got.event.sender == alice.user_id
    assert got.event.event_id == sent.event_id

    redaction = expect(
        alice,
        await alice.room_redact(room_id, sent.event_id, reason="oops"),
        nio.RoomRedactResponse,
    )
    assert redaction.event_id.startswith("$")
    assert redaction.event_id != sent.event_id

    again = expect(bob, await bob.room_get_event(room_id, sent.event_id), nio.RoomGetEventResponse)
    assert isinstance(again.event, nio.RedactedEvent), (again.event, bob.exchanges[-1])
    assert again.event.type == "m.room.message"
    assert again.event.redacter == alice.user_id
    assert again.event.reason == "oops"
    assert again.event.source["content"] == {}
    because = again.event.source["unsigned"]["redacted_because"]
    assert because["event_id"] == redaction.event_id
    assert because["type"] == "m.room.redaction"

    expect(bob, await bob.logout(), nio.LogoutResponse)
    assert not bob.logged_in
    # Logout ends only that device: the registration session still works.
    rooms = expect(bob_reg, await bob_reg.joined_rooms(), nio.JoinedRoomsResponse)
    assert room_id in rooms.rooms


async def test_logged_out_token_is_refused(nio_clients: ClientFactory) -> None:
    reg = await register(nio_clients, "carol")
    carol = await login(nio_clients, reg.user_id)
    token, device = carol.access_token, carol.device_id
    expect(carol, await carol.logout(), nio.LogoutResponse)

    stale = await nio_clients(reg.user_id)
    stale.restore_login(reg.user_id, device or "", token)
    refused = await stale.joined_rooms()
    assert isinstance(refused, nio.JoinedRoomsError), (refused, stale.exchanges[-1])
    assert refused.status_code == "M_UNKNOWN_TOKEN", stale.exchanges[-1]
    assert stale.exchanges[-1].status == 401


async def test_state_round_trip(nio_clients: ClientFactory) -> None:
    alice = await register(nio_clients, "alice")
    created = expect(
        alice, await alice.room_create(name="state", topic="first"), nio.RoomCreateResponse
    )
    room_id = created.room_id

    topic = expect(
        alice,
        await alice.room_get_state_event(room_id, "m.room.topic"),
        nio.RoomGetStateEventResponse,
    )
    assert topic.content == {"topic": "first"}

    put = expect(
        alice,
        await alice.room_put_state(room_id, "m.room.topic", {"topic": "second"}),
        nio.RoomPutStateResponse,
    )
    assert put.event_id.startswith("$")
    assert put.room_id == room_id

    topic = expect(
        alice,
        await alice.room_get_state_event(room_id, "m.room.topic"),
        nio.RoomGetStateEventResponse,
    )
    assert topic.content == {"topic": "second"}
    assert topic.event_type == "m.room.topic"
    assert topic.state_key == ""
    assert topic.room_id == room_id

    custom = {"colour": "teal", "n": 3}
    expect(
        alice,
        await alice.room_put_state(room_id, "org.linkchat.test", custom, state_key="k1"),
        nio.RoomPutStateResponse,
    )
    got = expect(
        alice,
        await alice.room_get_state_event(room_id, "org.linkchat.test", "k1"),
        nio.RoomGetStateEventResponse,
    )
    assert got.content == custom
    assert got.state_key == "k1"

    missing = await alice.room_get_state_event(room_id, "org.linkchat.test", "nope")
    assert isinstance(missing, nio.RoomGetStateEventError), (missing, alice.exchanges[-1])
    assert missing.status_code == "M_NOT_FOUND", alice.exchanges[-1]

    name = expect(
        alice,
        await alice.room_get_state_event(room_id, "m.room.name"),
        nio.RoomGetStateEventResponse,
    )
    assert name.content == {"name": "state"}


async def test_joined_members_and_joined_rooms(nio_clients: ClientFactory) -> None:
    alice = await register(nio_clients, "alice")
    bob = await register(nio_clients, "bob")
    first = expect(
        alice, await alice.room_create(name="one", invite=[bob.user_id]), nio.RoomCreateResponse
    ).room_id
    second = expect(alice, await alice.room_create(name="two"), nio.RoomCreateResponse).room_id

    members = expect(alice, await alice.joined_members(first), nio.JoinedMembersResponse)
    assert members.room_id == first
    assert {m.user_id for m in members.members} == {alice.user_id}

    expect(bob, await bob.join(first), nio.JoinResponse)
    members = expect(bob, await bob.joined_members(first), nio.JoinedMembersResponse)
    assert {m.user_id for m in members.members} == {alice.user_id, bob.user_id}

    alice_rooms = expect(alice, await alice.joined_rooms(), nio.JoinedRoomsResponse)
    assert set(alice_rooms.rooms) == {first, second}
    bob_rooms = expect(bob, await bob.joined_rooms(), nio.JoinedRoomsResponse)
    assert set(bob_rooms.rooms) == {first}

    # Bob was never in `second`: the spec answers 403 to a non-member.
    outsider = await bob.joined_members(second)
    assert isinstance(outsider, nio.JoinedMembersError), (outsider, bob.exchanges[-1])
    assert bob.exchanges[-1].status == 403, bob.exchanges[-1]
