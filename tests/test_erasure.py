"""Erasure: an erased user's messages are hidden from those who join later (as Synapse),
and still shown to those who were joined when they were sent."""

from __future__ import annotations

import json
import secrets
from typing import Any
from urllib.parse import quote

from tests.admin import start_with_admin
from tests.conftest import AppFactory
from tests.matrix import MatrixClient, User

DEACTIVATE = "/_synapse/admin/v1/deactivate/"


async def _bodies_in_messages(hs: MatrixClient, user: User, room: str) -> list[str]:
    page = await hs.ok("GET", f"rooms/{room}/messages?dir=b&limit=3", user=user)
    bodies: list[str] = []
    while True:
        bodies += [e["content"].get("body") for e in page["chunk"] if e["type"] == "m.room.message"]
        if "end" not in page or not page["chunk"]:
            return bodies
        page = await hs.ok(
            "GET", f"rooms/{room}/messages?dir=b&limit=3&from={page['end']}", user=user
        )


async def _bodies_in_sync(hs: MatrixClient, user: User, room: str) -> list[str]:
    timeline_filter = json.dumps({"room": {"timeline": {"limit": 100}}})
    synced = await hs.sync(user, filter=quote(timeline_filter))
    events = synced["rooms"]["join"][room]["timeline"]["events"]
    return [e["content"].get("body") for e in events if e["type"] == "m.room.message"]


async def _search(hs: MatrixClient, user: User, term: str) -> list[str]:
    body: dict[str, Any] = {"search_categories": {"room_events": {"search_term": term}}}
    found = await hs.ok("POST", "search", body, user=user)
    return [
        r["result"]["content"]["body"] for r in found["search_categories"]["room_events"]["results"]
    ]


async def test_erased_messages_are_hidden_from_later_joiners_only(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, root = server.hs, server.admin
    alice, carol, eve, quiet = [await hs.register() for _ in range(4)]
    room = await hs.create_room(alice, preset="public_chat")
    for user in (carol, eve, quiet):
        await hs.join(user, room)
    word = "zebra" + secrets.token_hex(3)
    await hs.send(alice, room, {"msgtype": "m.text", "body": f"alice {word}"})
    secret = await hs.send(eve, room, {"msgtype": "m.text", "body": f"eve {word}"})
    for n in range(4):
        await hs.send(eve, room, {"msgtype": "m.text", "body": f"eve filler {n}"})
    await hs.send(quiet, room, {"msgtype": "m.text", "body": f"quiet {word}"})
    await hs.ok("POST", DEACTIVATE + quote(eve.user_id), {"erase": True}, user=root)
    await hs.ok("POST", DEACTIVATE + quote(quiet.user_id), {}, user=root)
    dave = await hs.register()
    await hs.join(dave, room)

    later = await _bodies_in_messages(hs, dave, room)
    assert f"alice {word}" in later and f"quiet {word}" in later
    assert not [b for b in later if b and b.startswith("eve")]
    assert not [b for b in await _bodies_in_sync(hs, dave, room) if b and b.startswith("eve")]
    hidden = await hs.request("GET", f"rooms/{room}/event/{secret}", user=dave)
    assert (hidden.status, hidden.errcode) == (404, "M_NOT_FOUND")
    assert sorted(await _search(hs, dave, word)) == sorted([f"alice {word}", f"quiet {word}"])
    # Their membership (state) stays whole.
    members = await hs.ok("GET", f"rooms/{room}/members", user=dave)
    assert eve.user_id in [e["state_key"] for e in members["chunk"]]

    earlier = await _bodies_in_messages(hs, carol, room)
    assert f"eve {word}" in earlier and "eve filler 3" in earlier
    assert (await hs.request("GET", f"rooms/{room}/event/{secret}", user=carol)).status == 200
    assert f"eve {word}" in await _search(hs, carol, word)
