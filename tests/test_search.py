"""Server-side search (POST /search, room_events) as a client uses it: words, ranking,
paging, context, groups, filters, and never an event the searcher may not see."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

import pytest

from tests.matrix import MatrixClient, Reply, User


def _word() -> str:
    """A word no other test's message contains (letters only, so it is one token)."""
    return "w" + "".join(secrets.choice("bcdfghjklmnpqrstvz") for _ in range(10))


async def _search(
    hs: MatrixClient, user: User, term: str, next_batch: str | None = None, **criteria: Any
) -> Reply:
    path = "search" + (f"?next_batch={quote(next_batch)}" if next_batch else "")
    body = {"search_categories": {"room_events": {"search_term": term, **criteria}}}
    return await hs.request("POST", path, body, user=user)


async def _found(hs: MatrixClient, user: User, term: str, **criteria: Any) -> dict[str, Any]:
    reply = await _search(hs, user, term, **criteria)
    assert reply.status == 200, reply.body
    found: dict[str, Any] = reply.body["search_categories"]["room_events"]
    return found


def _ids(found: dict[str, Any]) -> list[str]:
    return [result["result"]["event_id"] for result in found["results"]]


async def _say(hs: MatrixClient, user: User, room: str, body: str) -> str:
    return await hs.send(user, room, {"msgtype": "m.text", "body": body})


async def test_search_finds_a_message_by_another_form_of_its_word(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    topic = _word()
    wanted = await _say(hs, alice, room, f"the {topic} meeting is tomorrow")
    await _say(hs, alice, room, f"{topic} lunch instead")
    found = await _found(hs, alice, f"{topic} meetings")
    assert _ids(found) == [wanted]
    assert found["count"] == 1
    result = found["results"][0]
    assert isinstance(result["rank"], float) and result["rank"] > 0
    served = result["result"]
    assert served["room_id"] == room and served["content"]["body"].startswith("the ")
    assert {topic, "meeting"} <= set(found["highlights"])
    assert "next_batch" not in found


async def test_words_match_as_prefixes_and_phrases_and_exclusions_work(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    tag = _word()
    first = await _say(hs, alice, room, f"{tag} quarterly planning review")
    second = await _say(hs, alice, room, f"{tag} planning the quarterly party")
    assert set(_ids(await _found(hs, alice, f"{tag} quarter"))) == {first, second}
    assert _ids(await _found(hs, alice, f'{tag} "quarterly planning"')) == [first]
    assert _ids(await _found(hs, alice, f"{tag} -party")) == [first]


async def test_rank_puts_the_closest_match_first_and_recent_the_newest(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    word = _word()
    strong = await _say(hs, alice, room, f"{word} {word} {word}")
    weak = await _say(hs, alice, room, f"{word} and many other words around it here today")
    by_rank = await _found(hs, alice, word, order_by="rank")
    assert _ids(by_rank) == [strong, weak]
    ranks = [result["rank"] for result in by_rank["results"]]
    assert ranks[0] > ranks[1]
    assert _ids(await _found(hs, alice, word, order_by="recent")) == [weak, strong]
    # The spec's default order is rank.
    assert _ids(await _found(hs, alice, word)) == [strong, weak]


@pytest.mark.parametrize("order_by", ["rank", "recent"])
async def test_next_batch_pages_chain_without_duplicates(hs: MatrixClient, order_by: str) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    word = _word()
    sent = {await _say(hs, alice, room, f"{word} " + "x " * (n % 4) + str(n)) for n in range(23)}
    seen: list[str] = []
    next_batch: str | None = None
    pages = 0
    while True:
        reply = await _search(hs, alice, word, next_batch, order_by=order_by, filter={"limit": 10})
        assert reply.status == 200, reply.body
        found = reply.body["search_categories"]["room_events"]
        assert found["count"] == 23
        seen += _ids(found)
        pages += 1
        if pages == 1:
            # Sent after the first page: a later page never shifts because of it.
            await _say(hs, alice, room, f"{word} arrived late")
        next_batch = found.get("next_batch")
        if next_batch is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 23
    assert set(seen) == sent


async def test_event_context_gives_neighbours_tokens_and_profiles(hs: MatrixClient) -> None:
    alice = await hs.register()
    bob = await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    word = _word()
    before = [await _say(hs, alice, room, f"before {n}") for n in range(3)]
    hit = await _say(hs, bob, room, f"the {word} itself")
    after = [await _say(hs, alice, room, f"after {n}") for n in range(3)]
    found = await _found(
        hs,
        alice,
        word,
        event_context={"before_limit": 2, "after_limit": 1, "include_profile": True},
    )
    assert _ids(found) == [hit]
    context = found["results"][0]["context"]
    # Nearest first before the result, oldest first after it, as /context answers.
    assert [e["event_id"] for e in context["events_before"]] == [before[2], before[1]]
    assert [e["event_id"] for e in context["events_after"]] == [after[0]]
    assert context["start"] and context["end"]
    profiles = context["profile_info"]
    assert set(profiles) == {alice.user_id, bob.user_id}
    assert profiles[bob.user_id]["displayname"] == bob.user_id[1:].split(":")[0]
    # The tokens continue history from either end of the context.
    page = await hs.ok(
        "GET", f"rooms/{room}/messages?dir=b&limit=1&from={context['start']}", user=alice
    )
    assert [e["event_id"] for e in page["chunk"]] == [before[0]]


async def test_groupings_partition_results_with_a_next_batch_per_group(hs: MatrixClient) -> None:
    alice = await hs.register()
    bob = await hs.register()
    first = await hs.create_room(alice, preset="public_chat")
    second = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, first)
    word = _word()
    in_first = [await _say(hs, alice, first, f"{word} {n}") for n in range(3)]
    by_bob = await _say(hs, bob, first, f"{word} from bob")
    in_second = await _say(hs, alice, second, f"{word} elsewhere")
    found = await _found(
        hs,
        alice,
        word,
        order_by="recent",
        filter={"limit": 3},
        groupings={"group_by": [{"key": "room_id"}, {"key": "sender"}]},
    )
    assert _ids(found) == [in_second, by_bob, in_first[2]]
    rooms = found["groups"]["room_id"]
    assert rooms[second] == {"results": [in_second], "order": 1}
    assert rooms[first]["results"] == [by_bob, in_first[2]] and rooms[first]["order"] == 2
    senders = found["groups"]["sender"]
    assert senders[bob.user_id]["results"] == [by_bob]
    assert "next_batch" not in senders[bob.user_id]
    # The room group's own next_batch continues within that room only.
    reply = await _search(
        hs, alice, word, rooms[first]["next_batch"], order_by="recent", filter={"limit": 3}
    )
    rest = reply.body["search_categories"]["room_events"]
    assert _ids(rest) == [in_first[1], in_first[0]]


async def test_filter_by_room_sender_type_and_keys(hs: MatrixClient) -> None:
    alice = await hs.register()
    bob = await hs.register()
    word = _word()
    first = await hs.create_room(alice, preset="public_chat", name=f"{word} room")
    second = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, first)
    mine = await _say(hs, alice, first, f"{word} alice")
    bobs = await _say(hs, bob, first, f"{word} bob")
    other = await _say(hs, alice, second, f"{word} second")
    notice = await hs.send(alice, second, {"msgtype": "m.notice", "body": f"{word} notice"})

    def ids(found: dict[str, Any]) -> set[str]:
        return set(_ids(found))

    keys = ["content.body"]
    assert ids(await _found(hs, alice, word, keys=keys)) == {mine, bobs, other, notice}
    assert ids(await _found(hs, alice, word, keys=keys, filter={"rooms": [first]})) == {
        mine,
        bobs,
    }
    assert ids(await _found(hs, alice, word, keys=keys, filter={"not_rooms": [first]})) == {
        other,
        notice,
    }
    assert ids(await _found(hs, alice, word, filter={"senders": [bob.user_id]})) == {bobs}
    assert ids(await _found(hs, alice, word, keys=keys, filter={"not_senders": [bob.user_id]})) == {
        mine,
        other,
        notice,
    }
    # The room's name is found only when content.name is searched, and types filter.
    named = await _found(hs, alice, word, keys=["content.name"])
    assert [r["result"]["type"] for r in named["results"]] == ["m.room.name"]
    assert ids(await _found(hs, alice, word, filter={"types": ["m.room.name"]})) == set(_ids(named))
    assert ids(await _found(hs, alice, word, filter={"not_types": ["m.room.*"]})) == set()


async def test_user_never_finds_events_of_rooms_they_never_joined(hs: MatrixClient) -> None:
    alice = await hs.register()
    eve = await hs.register()
    word = _word()
    private = await hs.create_room(alice)
    public = await hs.create_room(alice, preset="public_chat")
    await _say(hs, alice, private, f"{word} secret")
    await _say(hs, alice, public, f"{word} open but not joined")
    invited = await hs.create_room(alice, invite=[eve.user_id])
    await _say(hs, alice, invited, f"{word} to an invitee")
    found = await _found(hs, eve, word)
    assert found["results"] == [] and found["count"] == 0


async def test_joined_visibility_hides_what_was_said_before_the_user_joined(
    hs: MatrixClient,
) -> None:
    alice = await hs.register()
    bob = await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.ok(
        "PUT",
        f"rooms/{room}/state/m.room.history_visibility/",
        {"history_visibility": "joined"},
        user=alice,
    )
    word = _word()
    await _say(hs, alice, room, f"{word} before bob")
    await hs.join(bob, room)
    later = await _say(hs, alice, room, f"{word} after bob")
    assert _ids(await _found(hs, bob, word)) == [later]
    assert (await _found(hs, bob, word))["count"] == 1


async def test_shared_visibility_shows_history_from_before_the_join(hs: MatrixClient) -> None:
    alice = await hs.register()
    bob = await hs.register()
    room = await hs.create_room(alice, preset="public_chat")  # history is shared
    word = _word()
    earlier = await _say(hs, alice, room, f"{word} before bob")
    await hs.join(bob, room)
    assert _ids(await _found(hs, bob, word)) == [earlier]


async def test_user_does_not_find_what_was_said_after_they_left(hs: MatrixClient) -> None:
    alice = await hs.register()
    bob = await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    word = _word()
    while_in = await _say(hs, alice, room, f"{word} while bob is here")
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=bob)
    await _say(hs, alice, room, f"{word} after bob left")
    assert _ids(await _found(hs, bob, word)) == [while_in]
    # Once the room is forgotten it is not searched at all.
    await hs.ok("POST", f"rooms/{room}/forget", {}, user=bob)
    assert _ids(await _found(hs, bob, word)) == []


async def test_redacted_events_are_never_found(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    word = _word()
    kept = await _say(hs, alice, room, f"{word} kept")
    removed = await _say(hs, alice, room, f"{word} removed")
    await hs.ok("PUT", f"rooms/{room}/redact/{removed}/{secrets.token_hex(4)}", {}, user=alice)
    found = await _found(hs, alice, word)
    assert _ids(found) == [kept] and found["count"] == 1


async def test_messages_of_ignored_users_are_not_found(hs: MatrixClient) -> None:
    alice = await hs.register()
    bob = await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    word = _word()
    mine = await _say(hs, alice, room, f"{word} from alice")
    await _say(hs, bob, room, f"{word} from bob")
    await hs.ok(
        "PUT",
        f"user/{quote(alice.user_id)}/account_data/m.ignored_user_list",
        # Listing oneself hides nothing of one's own, here as in sync and history.
        {"ignored_users": {bob.user_id: {}, alice.user_id: {}}},
        user=alice,
    )
    assert _ids(await _found(hs, alice, word)) == [mine]


async def test_include_state_returns_the_state_of_each_result_room(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice, name="Stateful")
    word = _word()
    await _say(hs, alice, room, word)
    found = await _found(hs, alice, word, include_state=True)
    names = [e for e in found["state"][room] if e["type"] == "m.room.name"]
    assert names[0]["content"]["name"] == "Stateful"


@pytest.mark.parametrize(
    "term",
    ["", "   ", "-", '"', '""', "-only -exclusions", "or or", "the", "!!! ???", "a'b\\c:*|&"],
)
async def test_terms_without_words_find_nothing_and_never_fail(hs: MatrixClient, term: str) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    await _say(hs, alice, room, "the only message: a'b\\c")
    found = await _found(hs, alice, term)
    assert isinstance(found["results"], list) and found["count"] in (0, 1)


@pytest.mark.parametrize(
    ("room_events", "errcode"),
    [
        ({}, "M_BAD_JSON"),  # no search_term
        ({"search_term": 5}, "M_BAD_JSON"),
        ({"search_term": "x", "keys": ["content.msgtype"]}, "M_BAD_JSON"),
        ({"search_term": "x", "order_by": "oldest"}, "M_BAD_JSON"),
        ({"search_term": "x", "filter": {"limit": "ten"}}, "M_BAD_JSON"),
        ({"search_term": "x", "filter": {"limit": -1}}, "M_BAD_JSON"),
        ({"search_term": "x", "event_context": {"before_limit": -1}}, "M_BAD_JSON"),
        ({"search_term": "x", "groupings": {"group_by": [{"key": "type"}]}}, "M_BAD_JSON"),
    ],
)
async def test_bad_search_requests_are_400(
    hs: MatrixClient, room_events: dict[str, Any], errcode: str
) -> None:
    alice = await hs.register()
    reply = await hs.request(
        "POST", "search", {"search_categories": {"room_events": room_events}}, user=alice
    )
    assert reply.status == 400 and reply.errcode == errcode, reply.body


async def test_bad_next_batch_and_missing_categories_are_400(hs: MatrixClient) -> None:
    alice = await hs.register()
    for token in ["not-a-token", "e30", "eyJvIjoicmFuayJ9"]:  # garbage, {}, {"o":"rank"}
        reply = await _search(hs, alice, "x", token)
        assert reply.status == 400 and reply.errcode == "M_INVALID_PARAM", (token, reply.body)
    reply = await hs.request("POST", "search", {}, user=alice)
    assert reply.status == 400 and reply.errcode == "M_BAD_JSON"
    # A token made for one order cannot continue another.
    room = await hs.create_room(alice)
    word = _word()
    for _ in range(3):
        await _say(hs, alice, room, word)
    token = (await _found(hs, alice, word, order_by="recent", filter={"limit": 1}))["next_batch"]
    reply = await _search(hs, alice, word, token, order_by="rank")
    assert reply.status == 400 and reply.errcode == "M_INVALID_PARAM"


async def test_search_needs_an_access_token(hs: MatrixClient) -> None:
    reply = await hs.request(
        "POST", "search", {"search_categories": {"room_events": {"search_term": "x"}}}
    )
    assert reply.status == 401 and reply.errcode == "M_MISSING_TOKEN"
