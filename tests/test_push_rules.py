"""Push rules: every user reads the spec's server-default rules, filled in with their own ID."""

from __future__ import annotations

from homeserver.push.default_rules import default_ruleset, localpart
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


async def test_editing_rules_is_not_served_yet(hs: MatrixClient) -> None:
    user = await hs.register()
    put = await hs.request(
        "PUT", "pushrules/global/content/nocake", {"pattern": "cake", "actions": []}, user=user
    )
    assert (put.status, put.errcode) == (405, "M_UNRECOGNIZED")
    gone = await hs.request("DELETE", "pushrules/global/override/.m.rule.master", user=user)
    assert (gone.status, gone.errcode) == (405, "M_UNRECOGNIZED")
    rule = await hs.ok("GET", "pushrules/global/override/.m.rule.master", user=user)
    assert rule["enabled"] is False
