"""Members holding long-poll syncs and noting when each benchmark message arrived.

The latency scenarios (`delivery_latency`, `fanout`) send messages whose
content carries a run ID and a sequence number (`marked_content`); every
`Receiver` polls /sync in a loop, the way a client does, and records the
`time.perf_counter()` at which each sequence number first reached it, plus
what a client would notice going wrong: a sequence number delivered twice, a
timeline cut short (`limited`), a poll that failed.

A failed poll is counted, not raised: a delivery benchmark that stops at the
first 500 hides how many more there would have been. The loop pauses after a
failure so a broken server does not turn it into a busy loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from bench.client import TRANSPORT_ERRORS, JsonDict, MatrixClient, RawConnection, SyncResponse
from bench.stats import Outcomes

RUN_KEY = "com.linkchat.bench.run"
SEQ_KEY = "com.linkchat.bench.seq"
SENT_AT_KEY = "com.linkchat.bench.sent_at_ms"

# Pause after a failed poll before the next one.
RETRY_PAUSE_S = 0.5


def marked_content(run_id: str, seq: int) -> JsonDict:
    """An `m.room.message` body a `Receiver` of `run_id` recognises as number `seq`.

    `sent_at_ms` (wall clock) lets a receiver in another process compute the
    latency too; in-process scenarios use their own monotonic send times. In
    milliseconds because event JSON may not hold floats (canonical JSON).
    """
    return {
        "msgtype": "m.text",
        "body": f"bench {run_id} #{seq}",
        RUN_KEY: run_id,
        SEQ_KEY: seq,
        SENT_AT_KEY: time.time_ns() // 1_000_000,
    }


class Receiver:
    """One member's long-poll loop over one room."""

    def __init__(
        self,
        client: MatrixClient,
        room_id: str,
        run_id: str,
        *,
        sync_filter: Mapping[str, Any],
        timeout_ms: int = 30_000,
    ) -> None:
        self.client = client
        self.room_id = room_id
        self.run_id = run_id
        self.sync_filter = sync_filter
        # The inline filter as sent on every poll, encoded once.
        self._filter_param = json.dumps(sync_filter, separators=(",", ":"))
        self.timeout_ms = timeout_ms
        self.since: str | None = None
        # Sequence number -> perf_counter() when the response carrying it was read.
        self.arrivals: dict[int, float] = {}
        self.duplicates = 0
        self.limited = 0
        # For each limited timeline: (highest seq seen before it, lowest seq in it).
        # Messages in between were cut by the server, not silently dropped.
        self.limited_gaps: list[tuple[int, int]] = []
        self.polls = Outcomes()
        self.in_flight = False
        self._event_ids: set[str] = set()
        # max(self.arrivals), kept as they come: a poll must not cost O(messages so far).
        self._highest = -1

    async def catch_up(self) -> None:
        """An initial sync without waiting, so polls start after the setup events."""
        result = await self.client.sync(timeout_ms=0, sync_filter=self._filter_param)
        self.since = result.next_batch

    async def run(self, deadline: float) -> None:
        """Poll until `deadline` (a perf_counter value) or until cancelled."""
        # A connection of its own, without aiohttp's per-request CPU (bench/client.py).
        # Plain http only; over https the polls go through aiohttp.
        poller = (
            self.client.raw_connection()
            if self.client.server.base_url.startswith("http:")
            else None
        )
        try:
            await self._poll(poller, deadline)
        finally:
            if poller is not None:
                await poller.close()

    async def _poll(self, poller: RawConnection | None, deadline: float) -> None:
        while time.perf_counter() < deadline:
            self.in_flight = True
            try:
                if poller is None:
                    response = await self.client.sync_raw(
                        since=self.since, timeout_ms=self.timeout_ms, sync_filter=self._filter_param
                    )
                else:
                    response = await self.client.poll_sync(
                        poller,
                        since=self.since,
                        timeout_ms=self.timeout_ms,
                        filter_param=self._filter_param,
                    )
            except TRANSPORT_ERRORS as error:
                self.polls.record_exception(error)
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            finally:
                self.in_flight = False
            arrived_at = response.received_at or time.perf_counter()
            self.polls.record(response)
            next_batch = response.body.get("next_batch")
            if not response.ok or not isinstance(next_batch, str):
                if response.ok:
                    self.polls.record_exception(ValueError("sync response without next_batch"))
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            self.since = next_batch
            self._take(SyncResponse(response.body, response.elapsed), arrived_at)

    def _take(self, result: SyncResponse, arrived_at: float) -> None:
        room = ((result.body.get("rooms") or {}).get("join") or {}).get(self.room_id)
        if not isinstance(room, dict):
            return
        seen_before = self._highest
        in_batch: list[int] = []
        for event in result.timeline(self.room_id):
            content = event.get("content")
            if not isinstance(content, dict) or content.get(RUN_KEY) != self.run_id:
                continue
            seq = content.get(SEQ_KEY)
            if not isinstance(seq, int):
                continue
            event_id = event.get("event_id")
            if seq in self.arrivals or event_id in self._event_ids:
                self.duplicates += 1
                continue
            if isinstance(event_id, str):
                self._event_ids.add(event_id)
            self.arrivals[seq] = arrived_at
            self._highest = max(self._highest, seq)
            in_batch.append(seq)
        if (room.get("timeline") or {}).get("limited"):
            self.limited += 1
            self.limited_gaps.append((seen_before, min(in_batch, default=seen_before)))

    def missing(self, seqs: Sequence[int]) -> int:
        return sum(1 for seq in seqs if seq not in self.arrivals)

    def missing_in_gaps(self, seqs: Sequence[int]) -> int:
        """Missing messages that fall into a limited timeline's gap.

        Approximate when sends overlap (the server may commit them slightly
        out of sequence order), exact for a sequential sender.
        """
        return sum(
            1
            for seq in seqs
            if seq not in self.arrivals and any(low < seq < high for low, high in self.limited_gaps)
        )


async def catch_up_all(receivers: Sequence[Receiver], parallel: int) -> None:
    """Initial syncs for every receiver, at most `parallel` at a time."""
    gate = asyncio.Semaphore(parallel)

    async def one(receiver: Receiver) -> None:
        async with gate:
            await receiver.catch_up()

    await asyncio.gather(*(one(receiver) for receiver in receivers))


async def stop_all(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel receivers' loops and wait until they have let go of their requests."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def poll_outcomes(receivers: Sequence[Receiver]) -> Outcomes:
    merged = Outcomes()
    for receiver in receivers:
        merged.merge(receiver.polls)
    return merged
