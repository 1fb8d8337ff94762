"""Search over more matches than `count` counts exactly (store/search.py COUNT_LIMIT):
the count stops at the limit, and paging still finds every visible match once.

Newest first, that many matches are found by walking positions backwards rather
than through the word index, so this also checks the walk sees only what the
searcher may see."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

import pytest

from homeserver.store import search as search_store
from tests.matrix import MatrixClient

LIMIT = 3


@pytest.mark.parametrize("order_by", ["recent", "rank"])
async def test_count_stops_at_the_limit_and_pages_still_find_every_match(
    hs: MatrixClient, monkeypatch: pytest.MonkeyPatch, order_by: str
) -> None:
    monkeypatch.setattr(search_store, "COUNT_LIMIT", LIMIT)
    alice = await hs.register()
    bob = await hs.register()
    word = "w" + "".join(secrets.choice("bcdfghjklmnpqrstvz") for _ in range(10))
    room = await hs.create_room(alice)
    hidden = await hs.create_room(bob)
    sent = []
    for n in range(7):
        sent.append(
            await hs.send(alice, room, {"msgtype": "m.text", "body": f"{word} " + "x " * n})
        )
        # Interleaved with Alice's: Bob's private room holds as many matches.
        await hs.send(bob, hidden, {"msgtype": "m.text", "body": f"{word} {n}"})
    seen: list[str] = []
    next_batch: str | None = None
    while True:
        path = "search" + (f"?next_batch={quote(next_batch)}" if next_batch else "")
        criteria: dict[str, Any] = {
            "search_term": word,
            "order_by": order_by,
            "filter": {"limit": 2},
        }
        reply = await hs.request(
            "POST", path, {"search_categories": {"room_events": criteria}}, user=alice
        )
        assert reply.status == 200, reply.body
        found = reply.body["search_categories"]["room_events"]
        assert found["count"] == LIMIT
        seen += [result["result"]["event_id"] for result in found["results"]]
        next_batch = found.get("next_batch")
        if next_batch is None:
            break
    assert len(seen) == len(set(seen)) == len(sent)
    if order_by == "recent":
        assert seen == sent[::-1]
    else:
        assert set(seen) == set(sent)
