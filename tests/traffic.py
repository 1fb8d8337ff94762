"""Real traffic for fault tests: senders and long-polling receivers in one room, as
clients that retry behave, and the checks every fault test makes afterwards.

Senders send one message after another, each with its own transaction ID, and
retry the same ID until it is acknowledged: on 503 with Retry-After (after
waiting it out), or when the connection breaks. Receivers long-poll /sync and
record every message in the order served. Anything else a server answers (a
500, a 503 without Retry-After, a request hanging) is recorded as unexpected.

Afterwards: every acknowledged message is in the log exactly once, each
sender's in the order sent, nothing unacknowledged is, and every receiver got
exactly the log's messages, in the log's order.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg

from tests.processes import V3

# A request not answered in this long hangs (a long-poll's own timeout is 5 s).
REQUEST_TIMEOUT_S = 60.0
POLL_TIMEOUT_MS = 5_000
SYNC_FILTER = urllib.parse.quote(
    json.dumps({"room": {"timeline": {"limit": 1000}}, "presence": {"not_types": ["*"]}})
)


@dataclass
class Client:
    user_id: str
    token: str
    http: aiohttp.ClientSession
    received: list[str] = field(default_factory=list)
    since: str = ""


@dataclass
class Traffic:
    base_url: str
    senders: list[Client] = field(default_factory=list)
    receivers: list[Client] = field(default_factory=list)
    room_id: str = ""
    # (sender, number) -> event ID, in the order acknowledged
    acked: dict[tuple[str, int], str] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    refused: int = 0  # 503 with Retry-After
    broken: int = 0  # connections that broke (a worker stopping or dying)
    _sending: bool = True
    _receiving: bool = True
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    # Setting up

    @classmethod
    async def prepared(
        cls, base_url: str, senders: int = 4, receivers: int = 3, prefix: str = "t"
    ) -> Traffic:
        """Users registered and joined to one room (before any fault)."""
        traffic = cls(base_url)
        for kind, count, into in (
            ("s", senders, traffic.senders),
            ("r", receivers, traffic.receivers),
        ):
            for n in range(count):
                into.append(await traffic._register(f"{prefix}{kind}{n}"))
        owner = traffic.senders[0]
        created = await traffic._must(owner, "POST", "/createRoom", {"preset": "public_chat"})
        traffic.room_id = created["room_id"]
        for client in [*traffic.senders[1:], *traffic.receivers]:
            await traffic._must(client, "POST", f"/join/{traffic.room_id}", {})
        # Where each receiver starts: before the first message is sent.
        for receiver in traffic.receivers:
            first = await traffic._must(receiver, "GET", f"/sync?timeout=0&filter={SYNC_FILTER}")
            receiver.since = first["next_batch"]
        return traffic

    async def _register(self, name: str) -> Client:
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S))
        body = {"username": name, "password": "pw-" + name, "auth": {"type": "m.login.dummy"}}
        async with http.post(f"{self.base_url}{V3}/register", json=body) as reply:
            data = await reply.json()
            assert reply.status == 200, data
        return Client(data["user_id"], data["access_token"], http)

    async def _must(self, client: Client, method: str, path: str, body: Any = None) -> Any:
        while True:
            answer = await self.request(client, method, path, body)
            if answer is not None:
                return answer

    # Running

    def start(self) -> None:
        for sender in self.senders:
            self._tasks.append(asyncio.create_task(self._send(sender)))
        for receiver in self.receivers:
            self._tasks.append(asyncio.create_task(self._receive(receiver)))

    async def request(
        self, client: Client, method: str, path: str, body: Any = None
    ) -> dict[str, Any] | None:
        """The JSON of a 200; None when the client should try again."""
        headers = {"Authorization": f"Bearer {client.token}"}
        started = time.monotonic()
        try:
            async with client.http.request(
                method, f"{self.base_url}{V3}{path}", json=body, headers=headers
            ) as reply:
                if reply.status == 200:
                    return dict(await reply.json())
                text = await reply.text()
                retry_after = reply.headers.get("Retry-After")
                if reply.status == 503 and retry_after is not None and "M_UNKNOWN" in text:
                    self.refused += 1
                    await asyncio.sleep(min(2.0, float(retry_after)))
                    return None
                self.unexpected.append(f"{method} {path} -> {reply.status} {text[:200]}")
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
            self.broken += 1
        except TimeoutError:
            waited = time.monotonic() - started
            self.unexpected.append(f"{method} {path} hung for {waited:.0f} s")
        await asyncio.sleep(0.2)
        return None

    async def _send(self, sender: Client) -> None:
        n = 0
        while self._sending:
            txn = f"{sender.user_id}-{n}"
            path = f"/rooms/{self.room_id}/send/m.room.message/{urllib.parse.quote(txn)}"
            body = {"msgtype": "m.text", "body": f"{sender.user_id} {n}"}
            answer = None
            while answer is None:  # the same transaction ID until acknowledged
                answer = await self.request(sender, "PUT", path, body)
            self.acked[(sender.user_id, n)] = answer["event_id"]
            n += 1
            await asyncio.sleep(0.02)

    async def _receive(self, receiver: Client) -> None:
        since = receiver.since
        while self._receiving:
            path = f"/sync?since={since}&timeout={POLL_TIMEOUT_MS}&filter={SYNC_FILTER}"
            body = await self.request(receiver, "GET", path)
            if body is None:
                continue
            timeline = body["rooms"]["join"].get(self.room_id, {}).get("timeline", {})
            if timeline.get("limited"):
                self.unexpected.append(f"{receiver.user_id}: a limited timeline")
            receiver.received += [
                event["event_id"]
                for event in timeline.get("events", [])
                if event["type"] == "m.room.message"
            ]
            since = body["next_batch"]

    async def run_for(self, seconds: float) -> None:
        """Let traffic run; fail early if a task died."""
        await asyncio.sleep(seconds)
        for task in self._tasks:
            if task.done():
                task.result()

    async def stop(self, settle_s: float = 120) -> None:
        """Stop sending, wait until every receiver has every acknowledged message."""
        self._sending = False
        senders = self._tasks[: len(self.senders)]
        await asyncio.wait_for(asyncio.gather(*senders), timeout=settle_s)
        wanted = set(self.acked.values())
        deadline = time.monotonic() + settle_s
        while not all(wanted <= set(r.received) for r in self.receivers):
            assert time.monotonic() < deadline, [
                f"{r.user_id} misses {len(wanted - set(r.received))}" for r in self.receivers
            ]
            await asyncio.sleep(0.1)
        self._receiving = False
        await asyncio.wait_for(asyncio.gather(*self._tasks), timeout=settle_s)

    async def close(self) -> None:
        self._sending = self._receiving = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in [*self.senders, *self.receivers]:
            await client.http.close()

    # Checking

    async def check(self, dsn: str) -> None:
        """Nothing lost, nothing doubled, everything in order, everywhere."""
        assert self.unexpected == [], self.unexpected[:10]
        assert self.acked, "no message was acknowledged"
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(
                "SELECT event_id, json FROM events WHERE room_id = $1 AND type = 'm.room.message'"
                " ORDER BY stream_position",
                self.room_id,
            )
        finally:
            await conn.close()
        logged = [row["event_id"] for row in rows]
        bodies = [json.loads(row["json"])["content"]["body"] for row in rows]
        assert len(set(bodies)) == len(bodies), "a message is in the log twice"
        assert sorted(logged) == sorted(self.acked.values()), "log and acknowledgments differ"
        for sender in self.senders:
            numbers = [int(b.split()[1]) for b in bodies if b.split()[0] == sender.user_id]
            assert numbers == list(range(len(numbers))), f"{sender.user_id}'s out of order"
        for receiver in self.receivers:
            assert receiver.received == logged, f"{receiver.user_id} got other than the log"
