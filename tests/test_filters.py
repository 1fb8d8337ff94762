"""Filters: uploading and downloading them, their validation, and how they match events."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from homeserver.api.filters import FILTERS
from homeserver.errors import MatrixError
from homeserver.events.model import Event
from homeserver.sync.filters import (
    MAX_LIMIT,
    EventFilter,
    Filter,
    RoomEventFilter,
    apply_event_fields,
    parse_filter,
    parse_room_event_filter,
    split_field_path,
)
from tests.matrix import MatrixClient, User

SAMPLE = {
    "room": {
        "state": {"types": ["m.room.*"], "not_rooms": ["!726s6s6q:example.com"]},
        "timeline": {
            "limit": 10,
            "types": ["m.room.message"],
            "not_senders": ["@spam:example.com"],
        },
        "ephemeral": {"types": ["m.receipt", "m.typing"]},
    },
    "presence": {"types": ["m.presence"], "not_senders": ["@alice:example.com"]},
    "event_format": "client",
    "event_fields": ["type", "content", "sender"],
}


def _path(user: User, *rest: str) -> str:
    return "/".join([f"user/{quote(user.user_id)}/filter", *rest])


async def _upload(hs: MatrixClient, user: User, body: Any) -> str:
    reply = await hs.ok("POST", _path(user), body, user=user)
    filter_id = reply["filter_id"]
    assert isinstance(filter_id, str) and filter_id and not filter_id.startswith("{")
    return filter_id


def _event(
    event_type: str = "m.room.message",
    sender: str = "@a:hs",
    room_id: str = "!r:hs",
    content: dict[str, Any] | None = None,
) -> Event:
    pdu = {
        "room_id": room_id,
        "sender": sender,
        "type": event_type,
        "content": content or {},
        "origin_server_ts": 0,
        "depth": 1,
        "prev_events": [],
    }
    return Event.from_pdu("$e", pdu, 1)


# Over HTTP


async def test_uploaded_filter_downloads_as_it_was_uploaded(hs: MatrixClient) -> None:
    alice = await hs.register()
    filter_id = await _upload(hs, alice, SAMPLE)
    assert await hs.ok("GET", _path(alice, filter_id), user=alice) == SAMPLE


async def test_uploading_the_same_filter_twice_gives_the_same_id(hs: MatrixClient) -> None:
    alice = await hs.register()
    first = await _upload(hs, alice, {"room": {"timeline": {"limit": 5}}})
    again = await _upload(hs, alice, {"room": {"timeline": {"limit": 5}}})
    other = await _upload(hs, alice, {"room": {"timeline": {"limit": 6}}})
    assert first == again != other


async def test_empty_filter_is_accepted(hs: MatrixClient) -> None:
    alice = await hs.register()
    filter_id = await _upload(hs, alice, {})
    assert await hs.ok("GET", _path(alice, filter_id), user=alice) == {}


async def test_unknown_filter_is_not_found(hs: MatrixClient) -> None:
    alice = await hs.register()
    reply = await hs.request("GET", _path(alice, "nosuchfilter"), user=alice)
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")


async def test_cannot_upload_a_filter_for_another_user(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    reply = await hs.request("POST", _path(bob), {}, user=alice)
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")


async def test_cannot_read_another_users_filter(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    filter_id = await _upload(hs, bob, SAMPLE)
    reply = await hs.request("GET", _path(bob, filter_id), user=alice)
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    # Nor does the same ID name bob's filter under alice's own account.
    reply = await hs.request("GET", _path(alice, filter_id), user=alice)
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"room": {"timeline": {"limit": "10"}}}, "room.timeline.limit"),
        ({"room": {"timeline": {"limit": -1}}}, "room.timeline.limit"),
        ({"room": {"timeline": {"types": "m.room.message"}}}, "room.timeline.types"),
        ({"room": {"state": {"lazy_load_members": "yes"}}}, "room.state.lazy_load_members"),
        ({"event_format": "xml"}, "event_format"),
        ({"event_fields": "content"}, "event_fields"),
        ({"presence": {"senders": [1]}}, "presence.senders"),
        ({"room": {"rooms": {"!a:hs": True}}}, "room.rooms"),
    ],
)
async def test_malformed_filter_is_refused_naming_the_field(
    hs: MatrixClient, body: dict[str, Any], field: str
) -> None:
    alice = await hs.register()
    reply = await hs.request("POST", _path(alice), body, user=alice)
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")
    assert field in reply.body["error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"room": {"rooms": ["#alias:hs"]}}, "room.rooms"),
        ({"room": {"timeline": {"not_rooms": ["general"]}}}, "room.timeline.not_rooms"),
        ({"presence": {"senders": ["bob"]}}, "presence.senders"),
        ({"room": {"state": {"not_senders": ["!room:hs"]}}}, "room.state.not_senders"),
    ],
)
async def test_a_filter_naming_what_is_no_room_or_user_is_refused(
    hs: MatrixClient, body: dict[str, Any], field: str
) -> None:
    # As Synapse's filter schema (matrix_room_id, matrix_user_id): refused on upload,
    # and inline on /sync, rather than matching nothing.
    alice = await hs.register()
    reply = await hs.request("POST", _path(alice), body, user=alice)
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")
    assert field in reply.body["error"]
    inline = await hs.request("GET", f"sync?filter={quote(json.dumps(body))}", user=alice)
    assert (inline.status, inline.errcode) == (400, "M_INVALID_PARAM")


@pytest.mark.window_sources
async def test_event_format_federation_serves_events_as_the_log_holds_them(
    hs: MatrixClient,
) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    federation = quote(json.dumps({"event_format": "federation"}))
    first = await hs.sync(alice, filter=federation)
    joined = first["rooms"]["join"][room]
    for event in joined["timeline"]["events"] + joined["state"]["events"]:
        assert event["room_id"] == room
        assert {"event_id", "hashes", "signatures", "depth", "prev_events"} <= set(event)
    event_id = await hs.send(alice, room, {"msgtype": "m.text", "body": "hi"}, txn_id="t1")
    later = await hs.sync(alice, first["next_batch"], filter=federation)
    (served,) = later["rooms"]["join"][room]["timeline"]["events"]
    assert served["event_id"] == event_id
    assert served["content"] == {"msgtype": "m.text", "body": "hi"}
    assert {"hashes", "signatures", "auth_events", "prev_events", "depth"} <= set(served)
    assert served["unsigned"]["transaction_id"] == "t1"
    client = await hs.sync(alice, first["next_batch"])
    assert "hashes" not in client["rooms"]["join"][room]["timeline"]["events"][0]


async def test_filter_that_is_not_json_is_refused(hs: MatrixClient) -> None:
    alice = await hs.register()
    reply = await hs.request("POST", _path(alice), raw=b"{not json", user=alice)
    assert (reply.status, reply.errcode) == (400, "M_NOT_JSON")


async def test_resolving_an_inline_filter_or_an_id_gives_the_same_filter(hs: MatrixClient) -> None:
    alice = await hs.register()
    filter_id = await _upload(hs, alice, SAMPLE)
    service = hs.app[FILTERS]
    by_id = await service.resolve(alice.user_id, filter_id)
    inline = await service.resolve(alice.user_id, json.dumps(SAMPLE))
    assert by_id == inline == parse_filter(SAMPLE)
    assert by_id.room.timeline.types == ["m.room.message"]
    assert await service.resolve(alice.user_id, None) == Filter()


async def test_resolving_an_unknown_filter_id_is_an_invalid_parameter(hs: MatrixClient) -> None:
    alice = await hs.register()
    with pytest.raises(MatrixError) as refused:
        await hs.app[FILTERS].resolve(alice.user_id, "nosuchfilter")
    assert (refused.value.status, refused.value.errcode) == (400, "M_INVALID_PARAM")


async def test_resolving_inline_filter_that_is_not_json_is_refused(hs: MatrixClient) -> None:
    alice = await hs.register()
    with pytest.raises(MatrixError) as refused:
        await hs.app[FILTERS].resolve(alice.user_id, "{nope")
    assert (refused.value.status, refused.value.errcode) == (400, "M_NOT_JSON")
    with pytest.raises(MatrixError) as refused:
        await hs.app[FILTERS].resolve(alice.user_id, '{"room": []}')
    assert (refused.value.status, refused.value.errcode) == (400, "M_BAD_JSON")


# Matching (no server needed)


def test_limit_is_capped_and_defaults_apply() -> None:
    assert parse_filter({"room": {"timeline": {"limit": 10**6}}}).timeline_limit == MAX_LIMIT
    assert parse_filter({}).timeline_limit == 10
    assert parse_filter({"room": {"timeline": {"limit": 0}}}).timeline_limit == 0


def test_type_wildcards_match_any_sequence() -> None:
    chosen = EventFilter(types=["m.room.*", "com.*.poll"])
    assert chosen.allows("m.room.message")
    assert chosen.allows("com.example.poll")
    assert not chosen.allows("m.reaction")
    assert not chosen.allows("com.example.poll.start")
    # Only `*` is special: dots and other characters match themselves.
    assert not EventFilter(types=["m.room.messag?"]).allows("m.room.message")


def test_excluded_types_and_senders_win_over_included_ones() -> None:
    chosen = EventFilter(
        types=["m.*"], not_types=["m.typing"], senders=["@a:hs"], not_senders=["@a:hs"]
    )
    assert not chosen.allows("m.room.message", "@a:hs")
    assert not EventFilter(not_types=["m.typing"]).allows("m.typing")
    assert EventFilter(not_types=["m.typing"]).allows("m.receipt")


def test_empty_lists_include_nothing_and_absent_lists_everything() -> None:
    assert not EventFilter(types=[]).allows("m.room.message")
    assert not EventFilter(senders=[]).allows("m.room.message", "@a:hs")
    assert EventFilter().allows("anything", "@anyone:hs")


def test_room_event_filter_selects_rooms_and_urls() -> None:
    chosen = RoomEventFilter(rooms=["!r:hs", "!s:hs"], not_rooms=["!s:hs"], contains_url=True)
    assert chosen.allows_event(_event(content={"url": "mxc://hs/abc"}))
    assert not chosen.allows_event(_event(content={"body": "no url"}))
    assert not chosen.allows_event(_event(room_id="!s:hs", content={"url": "mxc://hs/abc"}))
    assert not chosen.allows_event(_event(room_id="!t:hs", content={"url": "mxc://hs/abc"}))
    without_urls = RoomEventFilter(contains_url=False)
    assert without_urls.allows_event(_event(content={"body": "text"}))
    assert not without_urls.allows_event(_event(content={"url": "mxc://hs/abc"}))


def test_room_filter_applies_its_room_lists() -> None:
    chosen = parse_filter({"room": {"rooms": ["!a:hs"], "not_rooms": ["!b:hs"]}})
    assert chosen.room.allows_room("!a:hs")
    assert not chosen.room.allows_room("!b:hs")
    assert not chosen.room.allows_room("!c:hs")


def test_unknown_filter_keys_are_ignored() -> None:
    assert parse_filter({"org.example.future": 1, "room": {"x": {}}}) == Filter()


def test_inline_room_event_filter_for_messages() -> None:
    assert parse_room_event_filter(None) == RoomEventFilter()
    chosen = parse_room_event_filter('{"types": ["m.room.message"], "lazy_load_members": true}')
    assert chosen.types == ["m.room.message"] and chosen.lazy_load_members
    for bad, errcode in (
        ("{oops", "M_NOT_JSON"),
        ("[]", "M_BAD_JSON"),
        ('{"limit": "x"}', "M_BAD_JSON"),
    ):
        with pytest.raises(MatrixError) as refused:
            parse_room_event_filter(bad)
        assert refused.value.errcode == errcode


def test_event_fields_paths_split_on_unescaped_dots() -> None:
    assert split_field_path("content.body") == ["content", "body"]
    assert split_field_path("content.m\\.relates_to") == ["content", "m.relates_to"]
    assert split_field_path("content.m\\\\foo") == ["content", "m\\foo"]
    assert split_field_path("content.a\\xb") == ["content", "a\\xb"]


def test_event_fields_keep_only_the_named_fields() -> None:
    served = {
        "type": "m.room.message",
        "sender": "@a:hs",
        "event_id": "$e",
        "content": {"body": "hi", "msgtype": "m.text", "m.relates_to": {"rel_type": "x"}},
        "unsigned": {"age": 5},
    }
    shaped = apply_event_fields(
        served, ["type", "content.body", "content.m\\.relates_to", "content.missing", "nope.x"]
    )
    assert shaped == {
        "type": "m.room.message",
        "content": {"body": "hi", "m.relates_to": {"rel_type": "x"}},
    }
    shaped["content"]["m.relates_to"]["rel_type"] = "changed"
    assert served["content"]["m.relates_to"] == {"rel_type": "x"}
    assert apply_event_fields(served, ["content", "content.body"])["content"] == served["content"]
