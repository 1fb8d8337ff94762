"""Token buckets: the arithmetic on an injected clock, and what every store of buckets shares."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis

from homeserver.errors import MatrixError
from homeserver.ratelimit.buckets import Buckets, Level, Limit, take, tokens_now
from homeserver.ratelimit.limiter import Action, ExemptUsers, RateLimiter
from homeserver.ratelimit.local import LocalBuckets
from homeserver.ratelimit.postgres import postgres_buckets
from homeserver.ratelimit.redis import RedisBuckets
from homeserver.store.migrate import migrate

TEN_A_SECOND = Limit(per_second=10.0, burst=5)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- the arithmetic ---------------------------------------------------------


def test_a_new_bucket_allows_its_burst_then_says_how_long_to_wait() -> None:
    level: Level | None = None
    for _ in range(5):
        level, wait = take(level, TEN_A_SECOND, 1, now=0.0)
        assert wait == 0.0
    level, wait = take(level, TEN_A_SECOND, 1, now=0.0)
    assert wait == pytest.approx(0.1)


def test_waiting_the_advertised_time_is_enough_and_a_little_less_is_not() -> None:
    level: Level | None = None
    for _ in range(5):
        level, _ = take(level, TEN_A_SECOND, 1, now=0.0)
    assert level is not None
    _, wait = take(level, TEN_A_SECOND, 1, now=0.03)
    assert wait == pytest.approx(0.07)
    assert take(level, TEN_A_SECOND, 1, now=0.03 + wait)[1] == 0.0
    assert take(level, TEN_A_SECOND, 1, now=0.03 + wait - 0.001)[1] > 0


def test_an_idle_bucket_refills_only_up_to_its_burst() -> None:
    level, _ = take(None, TEN_A_SECOND, 5, now=0.0)
    assert tokens_now(level, TEN_A_SECOND, now=3600.0) == 5
    for _ in range(5):
        level, wait = take(level, TEN_A_SECOND, 1, now=3600.0)
        assert wait == 0.0
    assert take(level, TEN_A_SECOND, 1, now=3600.0)[1] > 0


def test_a_cost_above_the_burst_passes_on_a_full_bucket_only() -> None:
    level, wait = take(None, TEN_A_SECOND, 50, now=0.0)
    assert wait == 0.0
    assert tokens_now(level, TEN_A_SECOND, now=0.0) == 0
    _, wait = take(level, TEN_A_SECOND, 50, now=0.0)
    assert wait == pytest.approx(0.5)  # until full, not until 50 tokens


def test_a_forced_cost_goes_into_debt_that_the_next_action_waits_out() -> None:
    level, wait = take(None, TEN_A_SECOND, 8, now=0.0, force=True)
    assert wait == 0.0
    assert level.tokens == -3
    _, wait = take(level, TEN_A_SECOND, 1, now=0.0)
    assert wait == pytest.approx(0.4)


def test_debt_is_bounded_by_one_burst() -> None:
    level, _ = take(None, TEN_A_SECOND, 1_000_000, now=0.0, force=True)
    assert level.tokens == -5


def test_giving_back_restores_tokens_but_never_beyond_the_burst() -> None:
    level, _ = take(None, TEN_A_SECOND, 5, now=0.0)
    level, _ = take(level, TEN_A_SECOND, -2, now=0.0, force=True)
    assert level.tokens == 2
    level, _ = take(level, TEN_A_SECOND, -100, now=0.0, force=True)
    assert level.tokens == 5


def test_a_clock_going_backwards_adds_no_tokens() -> None:
    level, _ = take(None, TEN_A_SECOND, 5, now=100.0)
    assert tokens_now(level, TEN_A_SECOND, now=50.0) == 0


def test_local_buckets_forget_full_buckets_as_the_table_grows() -> None:
    clock = Clock()
    buckets = LocalBuckets(clock)
    for n in range(4000):
        assert buckets.take_now(f"join:{n}", TEN_A_SECOND, 1) == 0.0
    clock.now += 1.0  # every one of them is full again
    for n in range(200):
        buckets.take_now(f"join:new{n}", TEN_A_SECOND, 1)
    assert len(buckets) < 300


def test_a_forgotten_bucket_answers_as_a_full_one() -> None:
    clock = Clock()
    buckets = LocalBuckets(clock)
    for _ in range(5):
        assert buckets.take_now("a", TEN_A_SECOND, 1) == 0.0
    assert buckets.take_now("a", TEN_A_SECOND, 1) > 0
    clock.now += 0.5
    for _ in range(5):
        assert buckets.take_now("a", TEN_A_SECOND, 1) == 0.0


async def test_limiter_refuses_with_429_and_exempts_listed_users_only() -> None:
    limiter = RateLimiter(
        {action: Limit(0.001, 2) for action in Action},
        LocalBuckets(Clock()),
        ExemptUsers(["@admin:example.com"]),
    )
    for _ in range(2):
        await limiter.limit_user(Action.MESSAGE, "@alice:example.com")
    with pytest.raises(MatrixError) as refused:
        await limiter.limit_user(Action.MESSAGE, "@alice:example.com")
    assert (refused.value.status, refused.value.errcode) == (429, "M_LIMIT_EXCEEDED")
    assert refused.value.extra["retry_after_ms"] == 1_000_000
    assert refused.value.headers["Retry-After"] == "1000"
    for _ in range(10):
        await limiter.limit_user(Action.MESSAGE, "@admin:example.com")
    # Keys that are not a signed-in requester (an IP, an account logging in) have no exemption.
    for _ in range(2):
        await limiter.limit(Action.FAILED_LOGIN, "@admin:example.com")
    with pytest.raises(MatrixError):
        await limiter.limit(Action.FAILED_LOGIN, "@admin:example.com")


async def test_limiter_exempts_users_an_admin_exempted_later() -> None:
    exempt = ExemptUsers([])
    limiter = RateLimiter({action: Limit(0.001, 1) for action in Action}, LocalBuckets(), exempt)
    await limiter.limit_user(Action.JOIN, "@bob:example.com")
    with pytest.raises(MatrixError):
        await limiter.limit_user(Action.JOIN, "@bob:example.com")
    exempt.set_overridden(["@bob:example.com"])
    await limiter.limit_user(Action.JOIN, "@bob:example.com")
    exempt.set_overridden([])
    with pytest.raises(MatrixError):
        await limiter.limit_user(Action.JOIN, "@bob:example.com")


async def test_disabled_limiter_lets_everything_through() -> None:
    limiter = RateLimiter(None, LocalBuckets(), ExemptUsers([]))
    for _ in range(100):
        await limiter.limit(Action.REGISTRATION, "127.0.0.1")
    assert not limiter.enabled


# --- every store of buckets -------------------------------------------------

# So slow that nothing refills while a test runs.
SLOW = Limit(per_second=0.001, burst=3)


class BucketsContract:
    """What LocalBuckets and RedisBuckets must both do, on the real clock."""

    @pytest.fixture
    async def buckets(self) -> AsyncIterator[Buckets]:
        raise NotImplementedError
        yield

    async def test_burst_then_refused_for_the_refill_time(self, buckets: Buckets) -> None:
        for _ in range(3):
            assert await buckets.take("message:@a:x", SLOW, 1) == 0.0
        wait = await buckets.take("message:@a:x", SLOW, 1)
        assert 990 < wait <= 1000

    async def test_checks_at_once_on_one_bucket_let_exactly_its_burst_through(
        self, buckets: Buckets
    ) -> None:
        waits = await asyncio.gather(*(buckets.take("join:@c:x", SLOW, 1) for _ in range(20)))
        assert sorted(wait == 0.0 for wait in waits) == [False] * 17 + [True] * 3
        others = await asyncio.gather(*(buckets.take(f"join:@{n}:x", SLOW, 1) for n in range(20)))
        assert others == [0.0] * 20

    async def test_buckets_are_independent_by_name(self, buckets: Buckets) -> None:
        for _ in range(3):
            assert await buckets.take("join:@a:x", SLOW, 1) == 0.0
        assert await buckets.take("join:@a:x", SLOW, 1) > 0
        assert await buckets.take("join:@b:x", SLOW, 1) == 0.0
        assert await buckets.take("invite:@a:x", SLOW, 1) == 0.0

    async def test_given_back_tokens_can_be_taken_again(self, buckets: Buckets) -> None:
        for _ in range(3):
            assert await buckets.take("failed_login:@a:x", SLOW, 1) == 0.0
        assert await buckets.take("failed_login:@a:x", SLOW, -1, force=True) == 0.0
        assert await buckets.take("failed_login:@a:x", SLOW, 1) == 0.0
        assert await buckets.take("failed_login:@a:x", SLOW, 1) > 0

    async def test_forced_debt_delays_the_next_action(self, buckets: Buckets) -> None:
        bytes_limit = Limit(per_second=1000.0, burst=5000)
        assert await buckets.take("media_upload_bytes:@a:x", bytes_limit, 8000, force=True) == 0.0
        wait = await buckets.take("media_upload_bytes:@a:x", bytes_limit, 1000)
        assert 3.5 < wait <= 4.0

    async def test_a_cost_above_the_burst_needs_a_full_bucket(self, buckets: Buckets) -> None:
        bytes_limit = Limit(per_second=1.0, burst=5000)
        assert await buckets.take("media_upload_bytes:@b:x", bytes_limit, 90_000) == 0.0
        assert await buckets.take("media_upload_bytes:@b:x", bytes_limit, 1) > 0


class TestLocalBuckets(BucketsContract):
    @pytest.fixture
    async def buckets(self) -> AsyncIterator[Buckets]:
        yield LocalBuckets()


class TestRedisBuckets(BucketsContract):
    @pytest.fixture
    async def namespace(self, redis_url: str) -> AsyncIterator[str]:
        namespace = "test-" + secrets.token_hex(6)
        yield namespace
        client = aioredis.Redis.from_url(redis_url)
        async for key in client.scan_iter(match=f"linkchat:{namespace}:*"):
            await client.delete(key)
        await client.aclose()

    @pytest.fixture
    async def buckets(self, redis_url: str, namespace: str) -> AsyncIterator[Buckets]:
        buckets = RedisBuckets(redis_url, namespace)
        yield buckets
        await buckets.close()

    async def test_two_clients_share_one_bucket(self, redis_url: str, namespace: str) -> None:
        first, second = RedisBuckets(redis_url, namespace), RedisBuckets(redis_url, namespace)
        try:
            assert await first.take("join:@a:x", SLOW, 2) == 0.0
            assert await second.take("join:@a:x", SLOW, 1) == 0.0
            assert await first.take("join:@a:x", SLOW, 1) > 0
            assert await second.take("join:@a:x", SLOW, 1) > 0
        finally:
            await first.close()
            await second.close()

    async def test_checks_behind_a_cancelled_one_are_still_answered(self, buckets: Buckets) -> None:
        # The first goes out at once and is cancelled in flight (its client hung up);
        # the ones queued behind it must not hang, and later checks must still work.
        first = asyncio.create_task(buckets.take("join:@d:x", SLOW, 1))
        await asyncio.sleep(0)
        behind = [asyncio.create_task(buckets.take("join:@e:x", SLOW, 1)) for _ in range(5)]
        await asyncio.sleep(0)
        first.cancel()
        waits = await asyncio.wait_for(asyncio.gather(*behind), timeout=30)
        assert sorted(wait == 0.0 for wait in waits) == [False, False, True, True, True]
        assert await buckets.take("join:@f:x", SLOW, 1) == 0.0

    async def test_a_bucket_expires_when_it_would_be_full_again(
        self, redis_url: str, namespace: str
    ) -> None:
        buckets = RedisBuckets(redis_url, namespace)
        client = aioredis.Redis.from_url(redis_url)
        try:
            assert await buckets.take("join:@a:x", Limit(per_second=10.0, burst=5), 2) == 0.0
            ttl_ms = await client.pttl(buckets.key("join:@a:x"))
            assert 0 < ttl_ms <= 200
            # Giving everything back leaves nothing to store.
            await buckets.take("join:@a:x", Limit(per_second=10.0, burst=5), -5, force=True)
            assert await client.exists(buckets.key("join:@a:x")) == 0
        finally:
            await client.aclose()
            await buckets.close()


async def test_without_redis_each_process_still_limits_on_its_own() -> None:
    # Nothing listens on port 1: every call to Redis fails at once.
    buckets = RedisBuckets("redis://127.0.0.1:1/0", "test-" + secrets.token_hex(6))
    try:
        for _ in range(3):
            assert await buckets.take("failed_login:@a:x", SLOW, 1) == 0.0
        assert await buckets.take("failed_login:@a:x", SLOW, 1) > 0
    finally:
        await buckets.close()


class TestPostgresBuckets(BucketsContract):
    """Workers without Redis share their buckets in PostgreSQL."""

    @pytest.fixture
    async def migrated_dsn(self, fresh_dsn: str) -> str:
        conn = await asyncpg.connect(fresh_dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        return fresh_dsn

    @pytest.fixture
    async def buckets(self, migrated_dsn: str) -> AsyncIterator[Buckets]:
        buckets = postgres_buckets(migrated_dsn)
        yield buckets
        await buckets.close()

    async def test_two_processes_share_one_bucket(self, migrated_dsn: str) -> None:
        first, second = postgres_buckets(migrated_dsn), postgres_buckets(migrated_dsn)
        try:
            assert await first.take("join:@a:x", SLOW, 2) == 0.0
            assert await second.take("join:@a:x", SLOW, 1) == 0.0
            assert await first.take("join:@a:x", SLOW, 1) > 0
            assert await second.take("join:@a:x", SLOW, 1) > 0
        finally:
            await first.close()
            await second.close()


async def test_without_postgres_each_process_still_limits_on_its_own() -> None:
    buckets = postgres_buckets("postgresql://postgres@127.0.0.1:1/none")
    try:
        for _ in range(3):
            assert await buckets.take("failed_login:@a:x", SLOW, 1) == 0.0
        assert await buckets.take("failed_login:@a:x", SLOW, 1) > 0
    finally:
        await buckets.close()
