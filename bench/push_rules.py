"""Scenario `push_rules`: the cost of evaluating one channel post for 10,000 subscribers.

Unlike the other scenarios this one runs in-process, on the server's own code
(homeserver/push/rules.py), because what it measures never crosses HTTP: the
push follower's evaluation of one post for every subscriber, off the append
path. It compiles the default rules once, as the follower does, and times

- `grouped`: one `evaluate_group` call for all subscribers (what the follower
  does: shared conditions decided once, per-user conditions as substring tests),
- `one by one`: `evaluate` per subscriber (a full walk of the ruleset each),

for a plain post, a post mentioning one subscriber by name, and an `@room`
post from the owner, over `--repeats` runs (the best is reported).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import Any

from bench.report import Report, Table, format_number
from bench.scenario import Scenario


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--subscribers", type=int, default=10_000, help="(default 10000)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each (default 5)")


def _best(run: Any, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


async def run(base_url: str, args: argparse.Namespace) -> Report:
    from homeserver.push.default_rules import default_template
    from homeserver.push.rules import (
        EventView,
        Recipient,
        RoomFacts,
        compile_ruleset,
        evaluate,
        evaluate_group,
    )
    from homeserver.rooms.power_levels import PowerLevels

    started_at = datetime.now(UTC)
    count = max(1, int(args.subscribers))
    repeats = max(1, int(args.repeats))
    owner = "@owner:bench"
    compiled = compile_ruleset(default_template("@someone:bench"))
    recipients = [Recipient(f"@sub{n}:bench", f"Subscriber {n}") for n in range(count)]
    room = RoomFacts(count + 1, PowerLevels.without_event(owner))
    posts = {
        "plain post": {"msgtype": "m.text", "body": "A new episode is out, listen now!"},
        "names one subscriber": {"msgtype": "m.text", "body": "Thanks, Subscriber 42, for this"},
        "@room from the owner": {"msgtype": "m.text", "body": "@room live in five minutes"},
    }
    table = Table(["post", "grouped ms", "one by one ms", "grouped µs/subscriber", "notified"])
    results: list[dict[str, Any]] = []
    for label, content in posts.items():
        fields = {"type": "m.room.message", "sender": owner, "room_id": "!c:bench"}

        def grouped(
            content: dict[str, Any] = content, fields: dict[str, Any] = fields
        ) -> dict[str, Any]:
            view = EventView({**fields, "content": content})
            return evaluate_group(compiled, view, room, recipients)

        def one_by_one(content: dict[str, Any] = content, fields: dict[str, Any] = fields) -> None:
            view = EventView({**fields, "content": content})
            for recipient in recipients:
                evaluate(compiled, view, room, recipient)

        outcome = grouped()
        grouped_s, naive_s = _best(grouped, repeats), _best(one_by_one, repeats)
        highlights = sum(1 for o in outcome.values() if o.highlight)
        results.append(
            {
                "post": label,
                "grouped_ms": round(grouped_s * 1000, 2),
                "one_by_one_ms": round(naive_s * 1000, 2),
                "notified": len(outcome),
                "highlights": highlights,
            }
        )
        table.rows.append(
            [
                label,
                format_number(grouped_s * 1000, 2),
                format_number(naive_s * 1000, 2),
                format_number(grouped_s * 1e6 / count, 3),
                f"{len(outcome)} ({highlights} highlights)",
            ]
        )
    return Report(
        scenario="push_rules",
        base_url="in-process",
        params={"subscribers": count, "repeats": repeats},
        results=results,
        table=table,
        notes=["best of --repeats runs; evaluation only (no database, no HTTP)."],
        started_at=started_at,
    )


SCENARIO = Scenario(
    name="push_rules",
    help="in-process: evaluating one channel post's push rules for 10,000 subscribers",
    add_arguments=add_arguments,
    run=run,
)
