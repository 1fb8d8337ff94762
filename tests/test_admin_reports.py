"""The reports as admins see them (/_synapse/admin/v1/{event,room,user}_reports): Synapse's
shapes, paging and filters; a deletion is an admin action in the audit trail."""

from __future__ import annotations

from typing import Any

import pytest

from tests.admin import AdminServer, assert_admins_only, start_with_admin
from tests.audit_log import assert_replay_identical
from tests.conftest import AppFactory
from tests.matrix import MatrixClient, User

ADMIN = "/_synapse/admin/v1"
AUDIT = "/_linkchat/v1/admin/audit"


async def reported_room(server: AdminServer) -> tuple[User, User, str, list[str]]:
    """bob sends two messages in a named, aliased room; carol reports both (oldest
    first), then the room and bob; returns carol, bob, the room and the events."""
    hs = server.hs
    bob, carol = await hs.register(), await hs.register()
    room = await hs.create_room(
        bob, preset="public_chat", name="Spam HQ", topic="buy now", room_alias_name=f"spam{id(hs)}"
    )
    await hs.join(carol, room)
    events = [await hs.send(bob, room, {"msgtype": "m.text", "body": f"spam {n}"}) for n in (1, 2)]
    for n, event_id in enumerate(events):
        body = {"reason": f"spam {n + 1}", "score": -50 - n}
        await hs.ok("POST", f"rooms/{room}/report/{event_id}", body, user=carol)
    await hs.ok("POST", f"rooms/{room}/report", {"reason": "a spam room"}, user=carol)
    await hs.ok("POST", f"users/{bob.user_id}/report", {"reason": "a spammer"}, user=carol)
    return carol, bob, room, events


async def listed(hs: MatrixClient, admin: User, kind: str, query: str = "") -> dict[str, Any]:
    return dict(await hs.ok("GET", f"{ADMIN}/{kind}{query}", user=admin))


async def test_event_reports_are_listed_as_synapse_lists_them(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    server = await start_with_admin(start_app, fresh_dsn)
    hs, admin = server.hs, server.admin
    carol, bob, room, events = await reported_room(server)

    page = await listed(hs, admin, "event_reports")
    assert page["total"] == 2 and "next_token" not in page
    newest, oldest = page["event_reports"]
    assert [newest["event_id"], oldest["event_id"]] == events[::-1]
    assert newest["id"] > oldest["id"]
    assert newest["received_ts"] >= oldest["received_ts"] > 0
    alias = (await hs.ok("GET", f"rooms/{room}/state/m.room.canonical_alias/", user=bob))["alias"]
    assert {key: newest[key] for key in newest if key not in ("id", "received_ts")} == {
        "room_id": room,
        "name": "Spam HQ",
        "canonical_alias": alias,
        "event_id": events[1],
        "user_id": carol.user_id,
        "sender": bob.user_id,
        "reason": "spam 2",
        "score": -51,
    }

    oldest_first = await listed(hs, admin, "event_reports", "?dir=f")
    assert [r["event_id"] for r in oldest_first["event_reports"]] == events
    first = await listed(hs, admin, "event_reports", "?limit=1")
    assert ([r["event_id"] for r in first["event_reports"]], first["next_token"]) == (
        [events[1]],
        1,
    )
    rest = await listed(hs, admin, "event_reports", f"?limit=1&from={first['next_token']}")
    assert [r["event_id"] for r in rest["event_reports"]] == [events[0]]
    assert "next_token" not in rest and rest["total"] == 2


async def test_event_reports_are_filtered_by_reporter_room_and_sender(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    server = await start_with_admin(start_app, fresh_dsn)
    hs, admin = server.hs, server.admin
    carol, bob, room, _ = await reported_room(server)
    localpart = carol.user_id[1:].split(":")[0]
    for query, total in (
        (f"?user_id={localpart[2:]}", 2),  # anywhere in the reporter's ID
        (f"?user_id={bob.user_id}", 0),
        (f"?room_id={room[1:8]}", 2),
        ("?room_id=%25", 0),  # % is no wildcard
        (f"?event_sender_user_id={bob.user_id}", 2),
        (f"?event_sender_user_id={carol.user_id}", 0),
    ):
        page = await listed(hs, admin, "event_reports", query.replace("@", "%40"))
        assert (page["total"], len(page["event_reports"])) == (total, total), query


async def test_one_event_report_comes_with_the_reported_event(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    server = await start_with_admin(start_app, fresh_dsn)
    hs, admin = server.hs, server.admin
    _, bob, room, _ = await reported_room(server)
    [report] = (await listed(hs, admin, "event_reports", "?dir=f&limit=1"))["event_reports"]
    detail = await hs.ok("GET", f"{ADMIN}/event_reports/{report['id']}", user=admin)
    assert {k: v for k, v in detail.items() if k != "event_json"} == report
    event = detail["event_json"]
    assert (event["room_id"], event["sender"]) == (room, bob.user_id)
    assert event["content"]["body"] == "spam 1"

    for missing in (report["id"] + 1000, 0):
        reply = await hs.request("GET", f"{ADMIN}/event_reports/{missing}", user=admin)
        assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    for bad in ("abc", "-1", "1.5"):
        reply = await hs.request("GET", f"{ADMIN}/event_reports/{bad}", user=admin)
        assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")


async def test_a_deleted_report_is_gone_and_the_audit_trail_says_who_deleted_it(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    server = await start_with_admin(start_app, fresh_dsn)
    hs, admin = server.hs, server.admin
    await reported_room(server)
    for kind in ("event_reports", "room_reports", "user_reports"):
        [report, *_] = (await listed(hs, admin, kind))[kind]
        path = f"{ADMIN}/{kind}/{report['id']}"
        assert await hs.ok("DELETE", path, {"reason": "handled"}, user=admin) == {}
        assert (await hs.request("GET", path, user=admin)).status == 404
        again = await hs.request("DELETE", path, user=admin)
        assert (again.status, again.errcode) == (404, "M_NOT_FOUND")
        assert report["id"] not in [r["id"] for r in (await listed(hs, admin, kind))[kind]]

        trail = await hs.ok("GET", f"{AUDIT}?action=report.delete&limit=1", user=admin)
        [action] = trail["actions"]
        assert (action["admin"], action["target"], action["reason"]) == (
            admin.user_id,
            str(report["id"]),
            "handled",
        )
        assert action["details"] == {"kind": kind.removesuffix("_reports")}
    await assert_replay_identical(fresh_dsn)


async def test_room_and_user_reports_are_listed_and_read(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    server = await start_with_admin(start_app, fresh_dsn)
    hs, admin = server.hs, server.admin
    carol, bob, room, _ = await reported_room(server)
    alias = (await hs.ok("GET", f"rooms/{room}/state/m.room.canonical_alias/", user=bob))["alias"]

    rooms = await listed(hs, admin, "room_reports")
    [room_report] = rooms["room_reports"]
    assert rooms["total"] == 1
    assert {k: room_report[k] for k in room_report if k not in ("id", "received_ts")} == {
        "room_id": room,
        "user_id": carol.user_id,
        "reason": "a spam room",
        "name": "Spam HQ",
        "topic": "buy now",
        "canonical_alias": alias,
    }
    assert await hs.ok("GET", f"{ADMIN}/room_reports/{room_report['id']}", user=admin) == (
        room_report
    )

    users = await listed(hs, admin, "user_reports", f"?target_user_id={bob.user_id}")
    [user_report] = users["user_reports"]
    assert {k: user_report[k] for k in user_report if k not in ("id", "received_ts")} == {
        "target_user_id": bob.user_id,
        "user_id": carol.user_id,
        "reason": "a spammer",
    }
    none = await listed(hs, admin, "user_reports", f"?target_user_id={carol.user_id}")
    assert none == {"user_reports": [], "total": 0}
    # An event report's ID is no room report's.
    [event_report, _] = (await listed(hs, admin, "event_reports"))["event_reports"]
    reply = await hs.request("GET", f"{ADMIN}/room_reports/{event_report['id']}", user=admin)
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")


@pytest.mark.parametrize("query", ["?from=-1", "?limit=x", "?dir=up"])
async def test_bad_paging_is_refused(start_app: AppFactory, query: str) -> None:
    server = await start_with_admin(start_app)
    reply = await server.hs.request("GET", f"{ADMIN}/event_reports{query}", user=server.admin)
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")


async def test_reports_are_for_admins_only(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, user = server.hs, server.user
    for kind in ("event_reports", "room_reports", "user_reports"):
        await assert_admins_only(hs, user, "GET", f"{ADMIN}/{kind}")
        await assert_admins_only(hs, user, "GET", f"{ADMIN}/{kind}/1")
        await assert_admins_only(hs, user, "DELETE", f"{ADMIN}/{kind}/1")
        await hs.ok("GET", f"{ADMIN}/{kind}", user=server.admin)
