"""Rate limits over HTTP: what a client over its limit sees, and who is never limited."""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from homeserver.api.requests import forwarded_client
from homeserver.config import RateLimit, RateLimits
from tests.conftest import AppFactory
from tests.matrix import MatrixClient, Reply, User
from tests.processes import V3, ServerProcess, register, running_pair

# High enough never to be reached by a test: for the classes a test is not about.
UNREACHED = RateLimit(per_second=1000.0, burst=1000)
# So slow that nothing refills while a test runs, however busy the machine.
NO_REFILL = 0.001


def limits(**classes: RateLimit) -> dict[str, Any]:
    """`rate_limits` on, every class at its default but those given."""
    return {"enabled": True, **classes}


def only(**classes: RateLimit) -> dict[str, Any]:
    """`rate_limits` on, with only the classes given at a reachable limit."""
    unreached = {name: UNREACHED for name in RateLimits.model_fields if name != "enabled"}
    return {"enabled": True, **unreached, **classes}


def assert_limited(reply: Reply) -> None:
    assert reply.status == 429, reply
    assert reply.errcode == "M_LIMIT_EXCEEDED"
    retry_after_ms = reply.body["retry_after_ms"]
    assert isinstance(retry_after_ms, int) and retry_after_ms > 0
    # Whole seconds, rounded up: waiting that long is always enough.
    assert int(reply.headers["Retry-After"]) * 1000 >= retry_after_ms


async def login(hs: MatrixClient, user: str, password: str) -> Reply:
    body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}}
    return await hs.request("POST", "login", {**body, "password": password})


async def attempts_until_limited(hs: MatrixClient, user: str, tries: int = 300) -> int:
    """Wrong passwords for `user` until one is refused with 429; its number."""
    for attempt in range(1, tries + 1):
        reply = await login(hs, user, "wrong " + secrets.token_hex(4))
        if reply.status == 429:
            assert_limited(reply)
            return attempt
        assert reply.status == 403, reply
    return tries + 1


async def send(hs: MatrixClient, user: User, room: str) -> Reply:
    return await hs.request(
        "PUT",
        f"rooms/{room}/send/m.room.message/{secrets.token_hex(6)}",
        {"msgtype": "m.text", "body": "hi"},
        user=user,
    )


# --- logins -----------------------------------------------------------------


async def test_wrong_passwords_get_429_long_before_the_300th_with_the_defaults(
    start_app: AppFactory,
) -> None:
    hs = await start_app(rate_limits=limits())
    user = await hs.register()
    assert await attempts_until_limited(hs, user.user_id) < 300


async def test_wrong_passwords_for_one_account_are_limited_by_failed_login(
    start_app: AppFactory,
) -> None:
    hs = await start_app(rate_limits=only(failed_login=RateLimit(per_second=NO_REFILL, burst=3)))
    alice, bob = await hs.register(), await hs.register()
    assert await attempts_until_limited(hs, alice.user_id) == 4
    # Even the right password waits: a guesser cannot tell a right one by its answer.
    assert_limited(await login(hs, alice.user_id, alice.password))
    # Another account, from the same address, is not affected.
    assert (await login(hs, bob.user_id, bob.password)).status == 200


async def test_right_passwords_do_not_count_as_failed_logins(start_app: AppFactory) -> None:
    hs = await start_app(rate_limits=only(failed_login=RateLimit(per_second=NO_REFILL, burst=2)))
    alice = await hs.register()
    for _ in range(5):
        assert (await login(hs, alice.user_id, alice.password)).status == 200
    assert await attempts_until_limited(hs, alice.user_id) == 3


async def test_login_attempts_on_one_account_are_limited_by_login_account(
    start_app: AppFactory,
) -> None:
    hs = await start_app(rate_limits=only(login_account=RateLimit(per_second=NO_REFILL, burst=5)))
    alice = await hs.register()
    # Spelled three ways, it is still one account.
    spellings = [alice.user_id, alice.user_id.upper(), alice.user_id[1:].split(":")[0]]
    for n in range(5):
        assert (await login(hs, spellings[n % 3], "wrong")).status == 403
    assert_limited(await login(hs, spellings[0], alice.password))


async def test_login_attempts_from_one_address_are_limited_by_login_address(
    start_app: AppFactory,
) -> None:
    hs = await start_app(rate_limits=only(login_address=RateLimit(per_second=NO_REFILL, burst=4)))
    users = [await hs.register() for _ in range(5)]
    for user in users[:4]:
        assert (await login(hs, user.user_id, user.password)).status == 200
    assert_limited(await login(hs, users[4].user_id, users[4].password))


async def test_behind_a_proxy_each_forwarded_address_has_its_own_login_budget(
    start_app: AppFactory,
) -> None:
    # The test client connects from 127.0.0.1: a proxy on this machine, trusted by default.
    hs = await start_app(rate_limits=only(login_address=RateLimit(per_second=NO_REFILL, burst=1)))
    user = await hs.register()
    body = {"type": "m.login.password", "user": user.user_id, "password": user.password}

    async def login_from(address: str) -> Reply:
        # A client's own X-Forwarded-For comes first; the proxy appends what it saw.
        headers = {"X-Forwarded-For": f"10.9.9.9, {address}"}
        return await hs.request("POST", "login", body, headers=headers)

    assert (await login_from("192.0.2.1")).status == 200
    assert_limited(await login_from("192.0.2.1"))
    assert (await login_from("192.0.2.2")).status == 200


async def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(start_app: AppFactory) -> None:
    hs = await start_app(
        rate_limits=only(login_address=RateLimit(per_second=NO_REFILL, burst=1)),
        listen={"trusted_proxies": []},
    )
    user = await hs.register()
    body = {"type": "m.login.password", "user": user.user_id, "password": user.password}
    headers = {"X-Forwarded-For": "192.0.2.1"}
    assert (await hs.request("POST", "login", body, headers=headers)).status == 200
    headers = {"X-Forwarded-For": "192.0.2.2"}
    assert_limited(await hs.request("POST", "login", body, headers=headers))


PROXIES = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8")]


def test_the_client_is_the_first_untrusted_address_from_the_right() -> None:
    assert forwarded_client("127.0.0.1", "203.0.113.7", PROXIES) == "203.0.113.7"
    # Through two of our proxies; what the client wrote itself comes first.
    forwarded = "1.2.3.4, 203.0.113.7, 10.1.2.3"
    assert forwarded_client("127.0.0.1", forwarded, PROXIES) == "203.0.113.7"
    assert forwarded_client("127.0.0.1", "junk, 203.0.113.7", PROXIES) == "203.0.113.7"
    assert forwarded_client("127.0.0.1", "10.0.0.9", PROXIES) == "10.0.0.9"
    assert forwarded_client("127.0.0.1", None, PROXIES) == "127.0.0.1"
    assert forwarded_client("127.0.0.1", " , ", PROXIES) == "127.0.0.1"


def test_x_forwarded_for_from_anyone_else_is_the_client_lying() -> None:
    assert forwarded_client("198.51.100.5", "203.0.113.7", PROXIES) == "198.51.100.5"


async def test_wrong_passwords_confirming_a_change_count_as_failed_logins(
    start_app: AppFactory,
) -> None:
    hs = await start_app(rate_limits=only(failed_login=RateLimit(per_second=NO_REFILL, burst=2)))
    alice = await hs.register()
    auth = {"type": "m.login.password", "user": alice.user_id, "password": "wrong"}
    body = {"new_password": "new one", "auth": auth}
    for _ in range(2):
        assert (await hs.request("POST", "account/password", body, user=alice)).status == 401
    assert_limited(await hs.request("POST", "account/password", body, user=alice))


# --- registration, rooms, sends ---------------------------------------------


async def test_registrations_from_one_address_are_limited(start_app: AppFactory) -> None:
    hs = await start_app(rate_limits=limits(registration=RateLimit(per_second=NO_REFILL, burst=3)))
    for _ in range(3):
        await hs.register()
    body = {"username": "u" + secrets.token_hex(5), "password": "pw"}
    # Asking for the flows is free; creating the account is what is counted.
    assert (await hs.request("POST", "register", body)).status == 401
    reply = await hs.request("POST", "register", {**body, "auth": {"type": "m.login.dummy"}})
    assert_limited(reply)


async def test_sends_are_limited_per_user(start_app: AppFactory) -> None:
    hs = await start_app(rate_limits=only(message=RateLimit(per_second=NO_REFILL, burst=10)))
    alice, bob, room = await hs.room_of_two()
    for _ in range(10):
        assert (await send(hs, alice, room)).status == 200
    assert_limited(await send(hs, alice, room))
    # State events and redactions draw on the same budget.
    reply = await hs.request("PUT", f"rooms/{room}/state/m.room.topic", {"topic": "x"}, user=alice)
    assert_limited(reply)
    assert (await send(hs, bob, room)).status == 200


async def test_retry_after_is_honoured(start_app: AppFactory) -> None:
    hs = await start_app(
        rate_limits=limits(
            message=RateLimit(per_second=2.0, burst=1), registration=UNREACHED, join=UNREACHED
        )
    )
    alice, _, room = await hs.room_of_two()
    for _ in range(50):
        reply = await send(hs, alice, room)
        if reply.status == 429:
            break
    assert_limited(reply)
    await asyncio.sleep(int(reply.headers["Retry-After"]))
    assert (await send(hs, alice, room)).status == 200


async def test_an_admin_from_the_config_is_not_limited(start_app: AppFactory) -> None:
    localpart = "admin_" + secrets.token_hex(4)
    hs = await start_app(
        rate_limits=limits(
            registration=UNREACHED, message=RateLimit(per_second=NO_REFILL, burst=10)
        ),
        admins=[f"@{localpart}:localhost"],
    )
    admin, other = await hs.register(localpart), await hs.register()
    room = await hs.create_room(admin)
    for _ in range(30):
        assert (await send(hs, admin, room)).status == 200
    for _ in range(15):
        await hs.create_room(admin)
    other_room = await hs.create_room(other)
    for _ in range(10):
        assert (await send(hs, other, other_room)).status == 200
    assert_limited(await send(hs, other, other_room))


async def test_room_creation_and_its_invites_are_limited(start_app: AppFactory) -> None:
    hs = await start_app(
        rate_limits=limits(
            registration=UNREACHED,
            room_creation=RateLimit(per_second=NO_REFILL, burst=3),
            invite=RateLimit(per_second=NO_REFILL, burst=3),
        )
    )
    alice, bob, carol = await hs.register(), await hs.register(), await hs.register()
    await hs.create_room(alice, invite=[bob.user_id, carol.user_id])
    reply = await hs.request("POST", "createRoom", {"invite": [bob.user_id] * 2}, user=alice)
    assert_limited(reply)  # 1 invite left of 3 (and the refused room counted as created)
    await hs.create_room(alice)
    assert_limited(await hs.request("POST", "createRoom", {}, user=alice))


async def test_invites_to_one_user_are_limited_whoever_sends_them(
    start_app: AppFactory,
) -> None:
    hs = await start_app(
        rate_limits=only(invite_recipient=RateLimit(per_second=NO_REFILL, burst=2))
    )
    target = await hs.register()
    inviters = [await hs.register() for _ in range(3)]
    rooms = [await hs.create_room(user) for user in inviters]
    for user, room in zip(inviters[:2], rooms, strict=False):
        await hs.ok("POST", f"rooms/{room}/invite", {"user_id": target.user_id}, user=user)
    reply = await hs.request(
        "POST", f"rooms/{rooms[2]}/invite", {"user_id": target.user_id}, user=inviters[2]
    )
    assert_limited(reply)
    other = await hs.register()
    await hs.ok("POST", f"rooms/{rooms[2]}/invite", {"user_id": other.user_id}, user=inviters[2])


async def test_joins_are_limited_per_user(start_app: AppFactory) -> None:
    hs = await start_app(rate_limits=only(join=RateLimit(per_second=NO_REFILL, burst=2)))
    owner, joiner = await hs.register(), await hs.register()
    rooms = [await hs.create_room(owner, preset="public_chat") for _ in range(3)]
    await hs.join(joiner, rooms[0])
    await hs.join(joiner, rooms[1])
    assert_limited(await hs.request("POST", f"join/{rooms[2]}", {}, user=joiner))
    assert_limited(await hs.request("POST", f"rooms/{rooms[2]}/join", {}, user=joiner))


async def test_uploaded_bytes_are_limited_per_user(start_app: AppFactory) -> None:
    hs = await start_app(rate_limits=only(media_upload_bytes=RateLimit(per_second=1.0, burst=1000)))
    alice, bob = await hs.register(), await hs.register()

    async def upload(user: User, size: int) -> Reply:
        return await hs.request(
            "POST",
            "/_matrix/media/v3/upload",
            raw=b"x" * size,
            user=user,
            headers={"Content-Type": "application/octet-stream"},
        )

    assert (await upload(alice, 600)).status == 200
    assert_limited(await upload(alice, 600))
    assert (await upload(alice, 300)).status == 200
    # One file over the whole budget still goes through on a full bucket.
    assert (await upload(bob, 5000)).status == 200
    assert_limited(await upload(bob, 1))


async def test_limits_off_lets_a_flood_of_registrations_through(start_app: AppFactory) -> None:
    hs = await start_app(rate_limits={"enabled": False})
    for _ in range(10):
        await hs.register()
    user = await hs.register()
    for _ in range(10):
        assert (await login(hs, user.user_id, "wrong")).status == 403


# --- processes sharing Redis ------------------------------------------------


@pytest.fixture(params=["redis", "postgres"])
def limited_pair(
    request: pytest.FixtureRequest, fresh_dsn: str, tmp_path: Path
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two processes sharing their buckets: in Redis, or (workers without Redis) in
    PostgreSQL, whose fresh database starts empty."""
    # A server name of its own: buckets in Redis are namespaced by it, so nothing
    # left by another run (or another suite on this Redis) can be counted here.
    server_name = f"rl{secrets.token_hex(5)}.test"
    rate_limits = {"enabled": True, "failed_login": {"per_second": 0.001, "burst": 3}}
    if request.param == "postgres":
        with running_pair(
            tmp_path, fresh_dsn, server_name=server_name, bus="postgres", rate_limits=rate_limits
        ) as pair:
            yield pair
        return
    redis_url = request.getfixturevalue("redis_url")
    try:
        with running_pair(
            tmp_path,
            fresh_dsn,
            server_name=server_name,
            redis={"url": redis_url},
            rate_limits=rate_limits,
        ) as pair:
            yield pair
    finally:
        # Buckets expire once full again, which at these rates is an hour away.
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(match=f"linkchat:{server_name}:*"):
            client.delete(key)
        client.close()


async def test_two_processes_share_one_bucket(
    limited_pair: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = limited_pair
    async with aiohttp.ClientSession() as http:
        alice = await register(http, a.base_url, "alice")

        async def wrong_password(process: ServerProcess) -> tuple[int, dict[str, Any]]:
            body = {"type": "m.login.password", "user": alice["user_id"], "password": "wrong"}
            async with http.post(f"{process.base_url}{V3}/login", json=body) as reply:
                return reply.status, await reply.json()

        statuses = [(await wrong_password(p))[0] for p in (a, b, a)]
        assert statuses == [403, 403, 403]
        status, body = await wrong_password(b)
        assert (status, body["errcode"]) == (429, "M_LIMIT_EXCEEDED")
        assert (await wrong_password(a))[0] == 429


async def test_key_queries_and_claims_are_limited_per_user_but_generously_by_default(
    start_app: AppFactory,
) -> None:
    hs = await start_app(
        rate_limits=only(
            key_query=RateLimit(per_second=NO_REFILL, burst=3),
            key_claim=RateLimit(per_second=NO_REFILL, burst=10),
        )
    )
    alice, bob = await hs.register(), await hs.register()
    query = {"device_keys": {bob.user_id: []}}
    for _ in range(3):
        assert (await hs.request("POST", "keys/query", query, user=alice)).status == 200
    assert_limited(await hs.request("POST", "keys/query", query, user=alice))
    assert (await hs.request("POST", "keys/query", query, user=bob)).status == 200
    # A claim costs one token per device asked for.
    claim = {"one_time_keys": {bob.user_id: {f"D{n}": "signed_curve25519" for n in range(6)}}}
    assert (await hs.request("POST", "keys/claim", claim, user=alice)).status == 200
    assert_limited(await hs.request("POST", "keys/claim", claim, user=alice))


async def test_the_default_key_limits_let_a_client_encrypt_for_a_big_room(
    start_app: AppFactory,
) -> None:
    hs = await start_app(rate_limits=limits(registration=UNREACHED))
    alice, bob = await hs.register(), await hs.register()
    devices = {f"DEVICE{n}": "signed_curve25519" for n in range(2_000)}
    for _ in range(2):  # a room of 2,000 devices, and again at once for the next session
        claim = {"one_time_keys": {bob.user_id: devices}}
        assert (await hs.request("POST", "keys/claim", claim, user=alice)).status == 200
    for _ in range(50):
        query = {"device_keys": {bob.user_id: []}}
        assert (await hs.request("POST", "keys/query", query, user=alice)).status == 200
