"""Scenario `channel_fanout`: one post to a broadcast channel, until the last subscriber has it.

A channel (`createRoom` with `creation_content.type: com.linkchat.channel`,
preset `public_chat`) is created by its owner; `--subscribers` users (default
2000) join it and hold long-poll syncs, and per round the owner posts one
message. The rounds, timings and report are `fanout`'s (`measure_fanout`);
what differs is the room: only its admins may post, and a post is one event
in the log whatever the number of subscribers, so the time to the last one
is the read path's alone. The target: under 2 s for 2000 subscribers.

Before the rounds the scenario reads the channel back through
`GET /_linkchat/v1/channels/{roomId}` and notes its subscriber count and the
owner's role in the report (a check that it measured a channel).
"""

from __future__ import annotations

import argparse

from bench.client import MatrixClient, path_segment
from bench.fanout import FanoutOptions, add_round_arguments, measure_fanout
from bench.report import Report
from bench.scenario import Scenario

CHANNEL_TYPE = "com.linkchat.channel"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--subscribers",
        type=int,
        default=2000,
        metavar="N",
        help="subscribers holding syncs, besides the posting owner (default 2000)",
    )
    add_round_arguments(parser)


async def create_channel(owner: MatrixClient) -> str:
    return await owner.create_room(
        preset="public_chat",
        name="bench channel",
        extra={"creation_content": {"type": CHANNEL_TYPE}},
    )


async def describe_channel(owner: MatrixClient, room_id: str) -> str:
    response = await owner.request("GET", f"/_linkchat/v1/channels/{path_segment(room_id)}")
    info = response.expect_ok()
    return (
        f"channel {room_id}: {info.get('subscriber_count')} joined "
        f"(the owner included), owner's role {info.get('your_role')}."
    )


async def run(base_url: str, args: argparse.Namespace) -> Report:
    subscribers = max(1, int(args.subscribers))
    return await measure_fanout(
        base_url,
        FanoutOptions.from_args(args, members=subscribers + 1),
        scenario="channel_fanout",
        server_pid=args.server_pid,
        create_room=create_channel,
        describe_room=describe_channel,
    )


SCENARIO = Scenario(
    name="channel_fanout",
    help="time until every subscriber of a broadcast channel has one post, all holding syncs",
    add_arguments=add_arguments,
    run=run,
)
