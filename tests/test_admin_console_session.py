"""A moderation session driven as synapse-admin (Awesome-Technologies/synapse-admin,
src/synapse/dataProvider.ts) drives the admin API: the same requests, with the same
query strings (query-string's `stringify`: keys sorted, absent ones left out) and the
same IDs percent-encoded or not, in the order an operator's clicks make them: list the
users, open one, deactivate them, list the rooms, open one with its tabs, delete it,
list the reports and open one."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from tests.admin import start_with_admin
from tests.conftest import AppFactory

ADMIN = "/_synapse/admin"


def listing(**query: Any) -> str:
    """A getList/getManyReference query as synapse-admin builds it."""
    shown = {key: value for key, value in query.items() if value is not None}
    return urlencode(
        {
            key: str(value).lower() if isinstance(value, bool) else value
            for key, value in sorted(shown.items())
        }
    )


def page(field: str, order: str, per_page: int = 10, **filters: Any) -> str:
    return listing(**{"from": 0, "limit": per_page, "order_by": field, "dir": order, **filters})


async def test_a_moderation_session_as_synapse_admin_drives_it(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    server = await start_with_admin(start_app, fresh_dsn)
    hs, root = server.hs, server.admin
    spammer, victim = await hs.register("spammer"), await hs.register("victim")
    room = await hs.create_room(spammer, preset="public_chat", name="Cheap pills")
    await hs.join(victim, room)
    spam = await hs.send(spammer, room, {"msgtype": "m.text", "body": "buy pills"})
    await hs.ok(
        "POST", f"rooms/{room}/report/{spam}", {"reason": "spam", "score": -100}, user=victim
    )

    # The login page shows the server's version.
    assert "server_version" in await hs.ok("GET", f"{ADMIN}/v1/server_version")

    # Users: the list (UserList's default filter and sort), then the spammer's page.
    users = await hs.ok(
        "GET",
        f"{ADMIN}/v2/users?" + page("name", "f", guests=True, deactivated=False, locked=False),
        user=root,
    )
    everyone = {root.user_id, server.user.user_id, spammer.user_id, victim.user_id}
    assert (users["total"], {u["name"] for u in users["users"]}) == (4, everyone)
    user_path = f"{ADMIN}/v2/users/{quote(spammer.user_id, safe='')}"
    shown = await hs.ok("GET", user_path, user=root)
    assert (shown["name"], shown["deactivated"], shown["shadow_banned"]) == (
        spammer.user_id,
        False,
        False,
    )
    encoded = quote(spammer.user_id, safe="")
    for tab, key in (
        ("v2/users/{}/devices", "devices"),
        ("v1/users/{}/joined_rooms", "joined_rooms"),
        ("v1/users/{}/pushers", "pushers"),
    ):
        found = await hs.ok("GET", f"{ADMIN}/{tab.format(encoded)}?" + page("id", "f"), user=root)
        assert key in found
    assert (
        spammer.user_id in (await hs.ok("GET", f"{ADMIN}/v1/whois/{encoded}", user=root))["user_id"]
    )

    # Deactivate (the user list's delete: deactivate with erase).
    await hs.ok("POST", f"{ADMIN}/v1/deactivate/{encoded}", {"erase": True}, user=root)
    gone = await hs.request(
        "POST",
        "login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": spammer.user_id},
            "password": spammer.password,
        },
    )
    assert (gone.status, gone.errcode) == (403, "M_USER_DEACTIVATED")

    # Rooms: the list, then the room's page and its tabs.
    rooms = await hs.ok("GET", f"{ADMIN}/v1/rooms?" + page("name", "f"), user=root)
    assert rooms["total_rooms"] == 1
    [listed] = rooms["rooms"]
    assert (listed["room_id"], listed["name"], listed["joined_members"]) == (room, "Cheap pills", 1)
    shown_room = await hs.ok("GET", f"{ADMIN}/v1/rooms/{quote(room, safe='')}", user=root)
    assert shown_room["room_id"] == room
    members = await hs.ok("GET", f"{ADMIN}/v1/rooms/{room}/members?" + page("id", "f"), user=root)
    assert members == {"members": [victim.user_id], "total": 1}
    state = await hs.ok("GET", f"{ADMIN}/v1/rooms/{room}/state?" + page("id", "f"), user=root)
    assert len(state["state"]) >= 5
    extremities = await hs.ok(
        "GET", f"{ADMIN}/v1/rooms/{room}/forward_extremities?" + page("id", "f"), user=root
    )
    assert extremities["count"] == 1

    # Delete it (the room list's delete: DELETE v2 with {"block": false}).
    deleted = await hs.ok("DELETE", f"{ADMIN}/v2/rooms/{room}", {"block": False}, user=root)
    status: dict[str, Any] = {}

    async def ended() -> bool:
        status.update(
            await hs.ok("GET", f"{ADMIN}/v2/rooms/delete_status/{deleted['delete_id']}", user=root)
        )
        return status["status"] == "complete"

    await hs.eventually(ended, 30.0)
    assert status["shutdown_room"]["kicked_users"] == [victim.user_id]
    rooms = await hs.ok("GET", f"{ADMIN}/v1/rooms?" + page("name", "f"), user=root)
    assert rooms == {"rooms": [], "offset": 0, "total_rooms": 0}

    # Reports: the list (newest first by received_ts), then one report's page.
    reports = await hs.ok("GET", f"{ADMIN}/v1/event_reports?" + page("received_ts", "b"), user=root)
    assert reports["total"] == 1
    [report] = reports["event_reports"]
    assert (report["event_id"], report["sender"], report["user_id"], report["score"]) == (
        spam,
        spammer.user_id,
        victim.user_id,
        -100,
    )
    detail = await hs.ok("GET", f"{ADMIN}/v1/event_reports/{report['id']}", user=root)
    assert detail["event_json"]["content"]["body"] == "buy pills"

    # Everything the operator did is in the audit trail, in order.
    trail = await hs.ok("GET", "/_linkchat/v1/admin/audit?dir=f", user=root)
    assert [a["action"] for a in trail["actions"]] == ["user.deactivate", "room.delete"]
