"""Spec: "Push Notifications": push rules, pushers and notifications, as a client sees them."""

from __future__ import annotations

import asyncio
from typing import Any

from sytest_lite.client import Api, Registered, assert_error, q

PUSHER = {
    "kind": "http",
    "app_id": "org.example.sytest",
    "pushkey": "sytest-key",
    "app_display_name": "sytest",
    "device_display_name": "sytest",
    "lang": "en",
    "data": {"url": "https://push.example.org/_matrix/push/v1/notify"},
}


async def test_default_push_rules_are_served(api: Api, alice: Registered) -> None:
    status, body = await api.request("GET", "/pushrules/", token=alice.access_token)
    assert status == 200, body
    assert isinstance(body, dict)
    ruleset = body["global"]
    assert ruleset["override"][0]["rule_id"] == ".m.rule.master"
    assert ".m.rule.is_user_mention" in [r["rule_id"] for r in ruleset["override"]]
    assert ".m.rule.message" in [r["rule_id"] for r in ruleset["underride"]]


async def test_a_push_rule_is_added_read_disabled_and_deleted(api: Api, alice: Registered) -> None:
    path = "/pushrules/global/content/sytest_cake"
    rule = {"pattern": "cake", "actions": ["notify"]}
    assert await api.request("PUT", path, json=rule, token=alice.access_token) == (200, {})
    status, body = await api.request("GET", path, token=alice.access_token)
    assert status == 200 and isinstance(body, dict)
    assert (body["pattern"], body["enabled"], body["default"]) == ("cake", True, False)
    enabled = {"enabled": False}
    assert await api.request("PUT", path + "/enabled", json=enabled, token=alice.access_token) == (
        200,
        {},
    )
    assert await api.request("GET", path + "/enabled", token=alice.access_token) == (
        200,
        {"enabled": False},
    )
    actions = {"actions": []}
    await api.request("PUT", path + "/actions", json=actions, token=alice.access_token)
    assert await api.request("GET", path + "/actions", token=alice.access_token) == (200, actions)
    assert await api.request("DELETE", path, token=alice.access_token) == (200, {})
    status, body = await api.request("GET", path, token=alice.access_token)
    assert_error(status, body, 404, "M_NOT_FOUND")


async def test_push_rule_errors(api: Api, alice: Registered) -> None:
    token = alice.access_token
    status, body = await api.request(
        "PUT", "/pushrules/global/room/!r:x?before=missing", json={"actions": []}, token=token
    )
    assert_error(status, body, 400, "M_UNKNOWN")
    status, body = await api.request(
        "PUT",
        "/pushrules/global/content/.m.rule.contains_user_name",
        json={"pattern": "x", "actions": []},
        token=token,
    )
    assert status == 400, body
    status, body = await api.request("PUT", "/pushrules/global/override/x", json={}, token=token)
    assert status == 400, body
    status, body = await api.request("DELETE", "/pushrules/global/override/nothere", token=token)
    assert_error(status, body, 404, "M_NOT_FOUND")


async def test_a_pusher_is_set_listed_and_removed(api: Api, alice: Registered) -> None:
    token = alice.access_token
    assert await api.request("POST", "/pushers/set", json=PUSHER, token=token) == (200, {})
    status, body = await api.request("GET", "/pushers", token=token)
    assert status == 200 and isinstance(body, dict)
    assert [p["pushkey"] for p in body["pushers"]] == ["sytest-key"]
    gone = {"kind": None, "app_id": PUSHER["app_id"], "pushkey": "sytest-key"}
    assert await api.request("POST", "/pushers/set", json=gone, token=token) == (200, {})
    assert await api.request("GET", "/pushers", token=token) == (200, {"pushers": []})


async def test_a_pusher_without_its_parameters_is_refused(api: Api, alice: Registered) -> None:
    body: dict[str, Any] = {"kind": "http", "app_id": "x", "pushkey": "y"}
    status, answer = await api.request("POST", "/pushers/set", json=body, token=alice.access_token)
    assert_error(status, answer, 400, "M_MISSING_PARAM")


async def test_a_mention_is_a_highlight_in_sync_and_notifications(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room = await api.create_room(alice.access_token, preset="public_chat")
    await api.join_ok(bob.access_token, room)
    event_id = await api.send_text(alice.access_token, room, f"hello {bob.user_id}")
    status, body = await api.request("GET", "/sync?timeout=0", token=bob.access_token)
    assert status == 200 and isinstance(body, dict)
    unread = body["rooms"]["join"][room]["unread_notifications"]
    assert unread == {"notification_count": 1, "highlight_count": 1}
    for _ in range(200):
        status, listed = await api.request(
            "GET", "/notifications?only=highlight", token=bob.access_token
        )
        assert status == 200 and isinstance(listed, dict)
        if any(n["event"]["event_id"] == event_id for n in listed["notifications"]):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the mention was never listed in /notifications")
    receipt = f"/rooms/{q(room)}/receipt/m.read/{q(event_id)}"
    await api.request("POST", receipt, json={}, token=bob.access_token)
    status, body = await api.request("GET", "/sync?timeout=0", token=bob.access_token)
    assert isinstance(body, dict)
    assert body["rooms"]["join"][room]["unread_notifications"]["notification_count"] == 0
