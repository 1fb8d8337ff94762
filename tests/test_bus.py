"""The PostgreSQL bus: messages of any size reach every process, and a lost
connection is noticed, reconnected and reported so subscribers catch up."""

from __future__ import annotations

import asyncio

import asyncpg

from homeserver.bus.postgres import PostgresBus
from tests.followers import until


async def _buses(dsn: str) -> tuple[PostgresBus, PostgresBus, list[str]]:
    sender, receiver = PostgresBus(dsn), PostgresBus(dsn)
    received: list[str] = []
    receiver.subscribe("stream", received.append)
    sender.subscribe("stream", lambda _message: None)
    await sender.start()
    await receiver.start()
    return sender, receiver, received


async def test_messages_longer_than_a_notify_payload_arrive_whole_and_in_order(
    fresh_dsn: str,
) -> None:
    sender, receiver, received = await _buses(fresh_dsn)
    try:
        # NOTIFY holds 8,000 bytes: these go as fragments, between small ones.
        messages = ["small", "é" * 20_000, "x" * 7_999, "last"]
        for message in messages:
            await sender.publish("stream", message)
        await until(lambda: len(received) == len(messages), "every message")
        assert received == messages
    finally:
        await sender.stop()
        await receiver.stop()


async def test_a_bus_whose_connection_is_cut_reconnects_and_says_it_resumed(
    fresh_dsn: str,
) -> None:
    sender, receiver, received = await _buses(fresh_dsn)
    resumed: list[bool] = []
    receiver.on_resumed(lambda: resumed.append(True))
    try:
        conn = await asyncpg.connect(fresh_dsn)
        try:
            # What PostgreSQL restarting does to the connections: end them.
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await conn.close()
        await until(lambda: bool(resumed), "the bus to resume")
        assert receiver.connected
        # The publisher reconnects on its own; a message sent while it did may be lost.
        for _ in range(60):
            await sender.publish("stream", "after")
            await asyncio.sleep(0.5)
            if "after" in received:
                break
        assert "after" in received
    finally:
        await sender.stop()
        await receiver.stop()
