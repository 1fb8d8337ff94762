"""Push rules over HTTP: the server defaults every user starts with, and the API that edits them."""

from __future__ import annotations

from typing import Any

from homeserver.push.default_rules import default_ruleset, localpart
from tests.audit_log import assert_replay_identical
from tests.matrix import MatrixClient

# The spec's "Predefined Rules", in the order a client evaluates them.
OVERRIDE_IDS = [
    ".m.rule.master",
    ".m.rule.suppress_notices",
    ".m.rule.invite_for_me",
    ".m.rule.member_event",
    ".m.rule.is_user_mention",
    ".m.rule.contains_display_name",
    ".m.rule.is_room_mention",
    ".m.rule.roomnotif",
    ".m.rule.tombstone",
    ".m.rule.reaction",
    ".m.rule.room.server_acl",
    ".m.rule.suppress_edits",
    # Ours, after the spec's (push/default_rules.py).
    ".com.linkchat.rule.friend_request",
]
UNDERRIDE_IDS = [
    ".m.rule.call",
    ".m.rule.encrypted_room_one_to_one",
    ".m.rule.room_one_to_one",
    ".m.rule.message",
    ".m.rule.encrypted",
]


def _ids(rules: list[dict[str, object]]) -> list[object]:
    return [rule["rule_id"] for rule in rules]


async def test_new_user_gets_every_default_rule_in_spec_order(hs: MatrixClient) -> None:
    user = await hs.register()
    body = await hs.ok("GET", "pushrules/", user=user)
    assert set(body) == {"global"}
    ruleset = body["global"]
    assert _ids(ruleset["override"]) == OVERRIDE_IDS
    assert _ids(ruleset["content"]) == [".m.rule.contains_user_name"]
    assert ruleset["room"] == [] and ruleset["sender"] == []
    assert _ids(ruleset["underride"]) == UNDERRIDE_IDS
    for rule in ruleset["override"] + ruleset["content"] + ruleset["underride"]:
        assert rule["default"] is True
        assert rule["enabled"] is (rule["rule_id"] != ".m.rule.master"), rule
        assert "notify" in rule["actions"] or rule["actions"] == [], rule
    for rule in ruleset["override"] + ruleset["underride"]:
        assert isinstance(rule["conditions"], list) and "pattern" not in rule


async def test_rules_that_name_their_owner_carry_the_callers_id(hs: MatrixClient) -> None:
    user = await hs.register()
    ruleset = (await hs.ok("GET", "pushrules/", user=user))["global"]
    by_id = {rule["rule_id"]: rule for rule in ruleset["override"]}
    invite = by_id[".m.rule.invite_for_me"]["conditions"]
    assert {"kind": "event_match", "key": "state_key", "pattern": user.user_id} in invite
    mention = by_id[".m.rule.is_user_mention"]["conditions"]
    assert mention == [
        {
            "kind": "event_property_contains",
            "key": "content.m\\.mentions.user_ids",
            "value": user.user_id,
        }
    ]
    (user_name,) = ruleset["content"]
    assert user_name["pattern"] == localpart(user.user_id) == user.user_id[1:].split(":")[0]
    assert user_name["actions"] == [
        "notify",
        {"set_tweak": "sound", "value": "default"},
        {"set_tweak": "highlight"},
    ]


async def test_global_scope_serves_the_same_ruleset(hs: MatrixClient) -> None:
    user = await hs.register()
    everything = await hs.ok("GET", "pushrules/", user=user)
    assert await hs.ok("GET", "pushrules/global/", user=user) == everything["global"]
    assert await hs.ok("GET", "pushrules", user=user) == everything
    assert everything["global"] == default_ruleset(user.user_id)


async def test_one_rule_its_enabled_flag_and_its_actions_can_be_read(hs: MatrixClient) -> None:
    user = await hs.register()
    rule = await hs.ok("GET", "pushrules/global/override/.m.rule.master", user=user)
    assert rule == {
        "rule_id": ".m.rule.master",
        "default": True,
        "enabled": False,
        "conditions": [],
        "actions": [],
    }
    assert await hs.ok("GET", "pushrules/global/override/.m.rule.master/enabled", user=user) == {
        "enabled": False
    }
    actions = await hs.ok("GET", "pushrules/global/underride/.m.rule.call/actions", user=user)
    assert actions == {"actions": ["notify", {"set_tweak": "sound", "value": "ring"}]}


async def test_unknown_rule_kind_or_scope_is_refused(hs: MatrixClient) -> None:
    user = await hs.register()
    missing = await hs.request("GET", "pushrules/global/override/nocake", user=user)
    assert (missing.status, missing.errcode) == (404, "M_NOT_FOUND")
    # A rule ID of one kind is not found under another.
    wrong_kind = await hs.request("GET", "pushrules/global/content/.m.rule.master", user=user)
    assert (wrong_kind.status, wrong_kind.errcode) == (404, "M_NOT_FOUND")
    bad_kind = await hs.request("GET", "pushrules/global/everything/.m.rule.master", user=user)
    assert (bad_kind.status, bad_kind.errcode) == (400, "M_INVALID_PARAM")
    bad_scope = await hs.request("GET", "pushrules/device/override/.m.rule.master", user=user)
    assert (bad_scope.status, bad_scope.errcode) == (400, "M_INVALID_PARAM")
    bad_scope = await hs.request("GET", "pushrules/device/", user=user)
    assert (bad_scope.status, bad_scope.errcode) == (400, "M_INVALID_PARAM")


async def test_push_rules_need_an_access_token(hs: MatrixClient) -> None:
    for path in ("pushrules/", "pushrules/global/", "pushrules/global/override/.m.rule.master"):
        reply = await hs.request("GET", path)
        assert (reply.status, reply.errcode) == (401, "M_MISSING_TOKEN"), path


# Editing: PUT, DELETE, /enabled, /actions


def _ids_of(ruleset: dict[str, Any], kind: str) -> list[str]:
    return [rule["rule_id"] for rule in ruleset[kind]]


async def test_a_new_content_rule_comes_before_the_server_defaults(hs: MatrixClient) -> None:
    user = await hs.register()
    await hs.ok(
        "PUT", "pushrules/global/content/nocake", {"pattern": "cake*lie", "actions": []}, user=user
    )
    rule = await hs.ok("GET", "pushrules/global/content/nocake", user=user)
    assert rule == {
        "rule_id": "nocake",
        "default": False,
        "enabled": True,
        "pattern": "cake*lie",
        "actions": [],
    }
    ruleset = (await hs.ok("GET", "pushrules/", user=user))["global"]
    assert _ids_of(ruleset, "content") == ["nocake", ".m.rule.contains_user_name"]


async def test_before_and_after_place_a_rule_among_the_users_own(hs: MatrixClient) -> None:
    user = await hs.register()
    rule = {"conditions": [{"kind": "event_match", "key": "type", "pattern": "x"}], "actions": []}
    await hs.ok("PUT", "pushrules/global/override/b", rule, user=user)
    await hs.ok("PUT", "pushrules/global/override/a?before=b", rule, user=user)
    await hs.ok("PUT", "pushrules/global/override/c?after=b", rule, user=user)
    await hs.ok("PUT", "pushrules/global/override/top", rule, user=user)
    ruleset = (await hs.ok("GET", "pushrules/", user=user))["global"]
    # Master stays above every user rule; the other defaults come after them.
    assert _ids_of(ruleset, "override")[:6] == [
        ".m.rule.master",
        "top",
        "a",
        "b",
        "c",
        ".m.rule.suppress_notices",
    ]
    # Moving an existing rule with `after`.
    await hs.ok("PUT", "pushrules/global/override/top?after=c", rule, user=user)
    ruleset = await hs.ok("GET", "pushrules/global/", user=user)
    assert _ids_of(ruleset, "override")[1:5] == ["a", "b", "c", "top"]


async def test_placing_a_rule_next_to_an_unknown_or_default_rule_is_refused(
    hs: MatrixClient,
) -> None:
    user = await hs.register()
    rule = {"actions": ["notify"]}
    for query in ("before=nothere", "after=nothere", "before=.m.rule.master"):
        reply = await hs.request(
            "PUT", f"pushrules/global/room/!r:localhost?{query}", rule, user=user
        )
        assert (reply.status, reply.errcode) == (400, "M_UNKNOWN"), (query, reply.body)
        assert "before/after rule not found" in reply.body["error"]
    assert (await hs.ok("GET", "pushrules/", user=user))["global"]["room"] == []


async def test_updating_a_rule_keeps_its_place_and_enabled_flag(hs: MatrixClient) -> None:
    user = await hs.register()
    for name in ("one", "two"):
        await hs.ok("PUT", f"pushrules/global/sender/@{name}:localhost", {"actions": []}, user=user)
    await hs.ok(
        "PUT", "pushrules/global/sender/@one:localhost/enabled", {"enabled": False}, user=user
    )
    await hs.ok("PUT", "pushrules/global/sender/@one:localhost", {"actions": ["notify"]}, user=user)
    sender = (await hs.ok("GET", "pushrules/", user=user))["global"]["sender"]
    assert [(r["rule_id"], r["enabled"], r["actions"]) for r in sender] == [
        ("@two:localhost", True, []),
        ("@one:localhost", False, ["notify"]),
    ]


async def test_bad_rules_are_refused_with_the_spec_errors(hs: MatrixClient) -> None:
    user = await hs.register()
    cases: list[tuple[str, Any, int, str]] = [
        ("content/x", {"actions": []}, 400, "M_BAD_JSON"),  # no pattern
        ("content/x", {"pattern": 3, "actions": []}, 400, "M_BAD_JSON"),
        ("override/x", {"actions": []}, 400, "M_BAD_JSON"),  # no conditions
        ("override/x", {"conditions": [{}], "actions": []}, 400, "M_BAD_JSON"),
        ("override/x", {"conditions": "all", "actions": []}, 400, "M_BAD_JSON"),
        ("room/!r:localhost", {}, 400, "M_BAD_JSON"),  # no actions
        ("room/!r:localhost", {"actions": ["dance"]}, 400, "M_BAD_JSON"),
        ("room/!r:localhost", {"actions": [{"tweak": "x"}]}, 400, "M_BAD_JSON"),
        ("room/!r:localhost", {"actions": "notify"}, 400, "M_BAD_JSON"),
        ("room/back\\slash", {"actions": []}, 400, "M_INVALID_PARAM"),
        # A server-default rule's pattern or conditions cannot change.
        (".m.rule.contains_user_name", {"pattern": "x", "actions": []}, 400, "M_INVALID_PARAM"),
        ("underride/.m.rule.message", {"conditions": [], "actions": []}, 400, "M_INVALID_PARAM"),
        ("override/.mine", {"conditions": [], "actions": []}, 400, "M_INVALID_PARAM"),
        ("nokind/x", {"actions": []}, 400, "M_INVALID_PARAM"),
    ]
    for path, body, status, errcode in cases:
        if path.startswith(".m.rule.contains_user_name"):
            path = "content/" + path
        reply = await hs.request("PUT", f"pushrules/global/{path}", body, user=user)
        assert (reply.status, reply.errcode) == (status, errcode), (path, body, reply.body)
    not_json = await hs.request("PUT", "pushrules/global/room/!r:x", raw=b"{", user=user)
    assert (not_json.status, not_json.errcode) == (400, "M_NOT_JSON")
    # Nothing was stored by any of them.
    assert await hs.ok("GET", "pushrules/", user=user) == {"global": default_ruleset(user.user_id)}


async def test_deleting_rules(hs: MatrixClient) -> None:
    user = await hs.register()
    await hs.ok("PUT", "pushrules/global/room/!r:localhost", {"actions": []}, user=user)
    await hs.ok("DELETE", "pushrules/global/room/!r:localhost", user=user)
    assert (await hs.ok("GET", "pushrules/", user=user))["global"]["room"] == []
    again = await hs.request("DELETE", "pushrules/global/room/!r:localhost", user=user)
    assert (again.status, again.errcode) == (404, "M_NOT_FOUND")
    # A server-default rule cannot be deleted (as Synapse: it is not a rule of one's own).
    default = await hs.request("DELETE", "pushrules/global/override/.m.rule.master", user=user)
    assert (default.status, default.errcode) == (404, "M_NOT_FOUND")


async def test_enabled_and_actions_of_default_and_own_rules_change(hs: MatrixClient) -> None:
    user = await hs.register()
    master = "pushrules/global/override/.m.rule.master"
    await hs.ok("PUT", master + "/enabled", {"enabled": True}, user=user)
    assert await hs.ok("GET", master + "/enabled", user=user) == {"enabled": True}
    message = "pushrules/global/underride/.m.rule.message"
    # Historical actions are stripped, as the spec says to.
    await hs.ok("PUT", message + "/actions", {"actions": ["dont_notify"]}, user=user)
    assert await hs.ok("GET", message + "/actions", user=user) == {"actions": []}
    rule = await hs.ok("GET", message, user=user)
    assert rule["default"] is True and rule["conditions"][0]["pattern"] == "m.room.message"
    for path, body, status, errcode in [
        ("underride/nothere/enabled", {"enabled": True}, 404, "M_NOT_FOUND"),
        ("underride/nothere/actions", {"actions": []}, 404, "M_NOT_FOUND"),
        ("underride/.m.rule.message/enabled", {"enabled": "yes"}, 400, "M_BAD_JSON"),
        ("underride/.m.rule.message/enabled", {}, 400, "M_BAD_JSON"),
        ("underride/.m.rule.message/actions", {"actions": [7]}, 400, "M_BAD_JSON"),
        ("underride/.m.rule.message/actions", {}, 400, "M_BAD_JSON"),
    ]:
        reply = await hs.request("PUT", f"pushrules/global/{path}", body, user=user)
        assert (reply.status, reply.errcode) == (status, errcode), (path, reply.body)
    missing = await hs.request("GET", "pushrules/global/underride/nothere/enabled", user=user)
    assert (missing.status, missing.errcode) == (404, "M_NOT_FOUND")


async def test_rule_changes_reach_sync_as_push_rules_account_data(hs: MatrixClient) -> None:
    user = await hs.register()
    first = await hs.ok("GET", "sync", user=user)
    await hs.ok("PUT", "pushrules/global/room/!quiet:localhost", {"actions": []}, user=user)
    later = await hs.ok("GET", f"sync?since={first['next_batch']}&timeout=0", user=user)
    (pushed,) = [e for e in later["account_data"]["events"] if e["type"] == "m.push_rules"]
    assert _ids_of(pushed["content"]["global"], "room") == ["!quiet:localhost"]
    # The account data API reads the same rules.
    data = await hs.ok("GET", f"user/{user.user_id}/account_data/m.push_rules", user=user)
    assert data == pushed["content"]


async def test_rules_are_facts_of_the_log_that_replay_rebuilds(
    start_app: Any, fresh_dsn: str
) -> None:
    hs = await start_app(fresh_dsn)
    user = await hs.register()
    await hs.ok(
        "PUT", "pushrules/global/content/beer", {"pattern": "beer", "actions": []}, user=user
    )
    await hs.ok(
        "PUT", "pushrules/global/override/.m.rule.master/enabled", {"enabled": True}, user=user
    )
    await assert_replay_identical(fresh_dsn)
