"""POST /user_directory/search: whom a user can find, and by what."""

from __future__ import annotations

import secrets
from typing import Any

import asyncpg

from homeserver.store import user_directory as directory_store
from tests.conftest import AppFactory
from tests.matrix import MatrixClient, User


async def _search(hs: MatrixClient, user: User, term: str, limit: int = 10) -> dict[str, Any]:
    body = {"search_term": term, "limit": limit}
    return dict(await hs.ok("POST", "user_directory/search", body, user=user))


async def _found(hs: MatrixClient, user: User, term: str) -> list[str]:
    return [result["user_id"] for result in (await _search(hs, user, term))["results"]]


async def _named(hs: MatrixClient, name: str) -> User:
    user = await hs.register()
    await hs.ok("PUT", f"profile/{user.user_id}/displayname", {"displayname": name}, user=user)
    return user


def _word() -> str:
    """A name nobody else in this run's database has."""
    return "zq" + secrets.token_hex(4)


async def test_a_user_sharing_a_private_room_is_found(hs: MatrixClient) -> None:
    word = _word()
    alice, bob = await hs.register(), await _named(hs, f"Bob {word.title()}")
    room = await hs.create_room(alice, preset="private_chat", invite=[bob.user_id])
    assert await _found(hs, alice, word) == []  # only invited, not yet sharing the room
    await hs.join(bob, room)
    body = await _search(hs, alice, word)
    assert body == {
        "results": [{"user_id": bob.user_id, "display_name": f"Bob {word.title()}"}],
        "limited": False,
    }


async def test_members_of_public_rooms_are_found_by_anyone(hs: MatrixClient) -> None:
    word = _word()
    host, stranger = await _named(hs, f"Public {word}"), await hs.register()
    await hs.create_room(host, preset="public_chat")
    assert await _found(hs, stranger, word) == [host.user_id]


async def test_strangers_are_not_found(hs: MatrixClient) -> None:
    word = _word()
    hermit, seeker = await _named(hs, f"Hermit {word}"), await hs.register()
    await hs.create_room(hermit, preset="private_chat")
    assert await _found(hs, seeker, word) == []
    assert await _found(hs, seeker, hermit.user_id) == []


async def test_everyone_is_found_when_the_server_searches_all_users(
    start_app: AppFactory,
) -> None:
    hs = await start_app(user_directory={"search_all_users": True})
    word = _word()
    hermit, seeker = await _named(hs, f"Hermit {word}"), await hs.register()
    assert await _found(hs, seeker, word) == [hermit.user_id]


async def test_search_matches_word_prefixes_of_names_and_user_ids_in_any_case(
    hs: MatrixClient,
) -> None:
    word = _word()
    localpart = f"{word}.smith_jr"
    alice = await hs.register(localpart)
    await hs.ok(
        "PUT",
        f"profile/{alice.user_id}/displayname",
        {"displayname": f"Alice Éloïse {word.upper()}"},
        user=alice,
    )
    seeker = await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(seeker, room)
    for term in (
        word[:5],
        word.upper(),
        f"ali {word}",
        "éloï",
        f"{word}.smith",
        f"smi {word}",
        "jr " + word,
        alice.user_id,
        f"@{localpart}",
    ):
        assert alice.user_id in await _found(hs, seeker, term), term
    for term in (f"{word}x", f"bob {word}", word[1:], "localhost " + word):
        assert alice.user_id not in await _found(hs, seeker, term), term


async def test_a_new_display_name_is_found_and_the_old_one_is_not(hs: MatrixClient) -> None:
    old, new = _word(), _word()
    alice = await _named(hs, old)
    await hs.create_room(alice, preset="public_chat")
    seeker = await hs.register()
    assert await _found(hs, seeker, old) == [alice.user_id]
    await hs.ok("PUT", f"profile/{alice.user_id}/displayname", {"displayname": new}, user=alice)
    assert await _found(hs, seeker, old) == []
    body = await _search(hs, seeker, new)
    assert body["results"] == [{"user_id": alice.user_id, "display_name": new}]


async def test_results_are_limited_and_say_so(hs: MatrixClient) -> None:
    word = _word()
    host = await hs.register()
    room = await hs.create_room(host, preset="public_chat")
    for n in range(4):
        member = await _named(hs, f"{word} number{n}")
        await hs.join(member, room)
    limited = await _search(hs, host, word, limit=3)
    assert len(limited["results"]) == 3 and limited["limited"] is True
    everyone = await _search(hs, host, word, limit=10)
    assert len(everyone["results"]) == 4 and everyone["limited"] is False


async def test_an_exact_name_comes_first(hs: MatrixClient) -> None:
    word = _word()
    host = await hs.register()
    room = await hs.create_room(host, preset="public_chat")
    for name in (f"{word}son", f"{word} junior", word):
        member = await _named(hs, name)
        await hs.join(member, room)
    results = (await _search(hs, host, word))["results"]
    assert results[0]["display_name"] == word
    assert {r["display_name"] for r in results} == {word, f"{word}son", f"{word} junior"}


async def test_leaving_the_shared_room_hides_a_user_again(hs: MatrixClient) -> None:
    word = _word()
    alice, bob = await hs.register(), await _named(hs, word)
    room = await hs.create_room(alice, preset="private_chat", invite=[bob.user_id])
    await hs.join(bob, room)
    assert await _found(hs, alice, word) == [bob.user_id]
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=bob)
    assert await _found(hs, alice, word) == []


async def test_bad_searches_are_refused_or_find_nothing(hs: MatrixClient) -> None:
    alice = await hs.register()
    for body in ({}, {"search_term": 5}, {"search_term": "a", "limit": "ten"}):
        reply = await hs.request("POST", "user_directory/search", body, user=alice)
        assert (reply.status, reply.errcode) == (400, "M_BAD_JSON"), body
    reply = await hs.request("POST", "user_directory/search", {"search_term": "a"})
    assert reply.status == 401
    for term in ("", "   ", "!!! ???", "' & | :*"):
        assert await _search(hs, alice, term) == {"results": [], "limited": False}, term


async def test_the_search_uses_the_directory_index(hs: MatrixClient, run_dsn: str) -> None:
    conn = await asyncpg.connect(run_dsn)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL enable_seqscan = off")
            rows = await conn.fetch(
                "EXPLAIN " + directory_store.SEARCH,
                "@seeker:localhost",
                "'ali':*",
                "ali",
                11,
                False,
            )
    finally:
        await conn.close()
    assert "profiles_directory_search" in "\n".join(row[0] for row in rows)


# The directory follows the rooms that make a user public (Synapse's user directory
# with search_all_users off: rooms publicly joinable or world_readable).


async def _set_state(
    hs: MatrixClient, user: User, room: str, event_type: str, content: Any
) -> None:
    await hs.ok("PUT", f"rooms/{room}/state/{event_type}/", content, user=user)


async def test_leaving_the_public_room_hides_a_user_from_strangers(hs: MatrixClient) -> None:
    word = _word()
    host, stranger = await _named(hs, f"Host {word}"), await hs.register()
    room = await hs.create_room(host, preset="public_chat")
    assert await _found(hs, stranger, word) == [host.user_id]
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=host)
    assert await _found(hs, stranger, word) == []


async def test_closing_a_public_room_hides_its_members(hs: MatrixClient) -> None:
    word = _word()
    host, stranger = await _named(hs, f"Host {word}"), await hs.register()
    room = await hs.create_room(host, preset="public_chat")
    assert await _found(hs, stranger, word) == [host.user_id]
    await _set_state(hs, host, room, "m.room.join_rules", {"join_rule": "invite"})
    assert await _found(hs, stranger, word) == []
    await _set_state(hs, host, room, "m.room.join_rules", {"join_rule": "public"})
    assert await _found(hs, stranger, word) == [host.user_id]


async def test_members_of_a_world_readable_room_are_found_by_anyone(hs: MatrixClient) -> None:
    word = _word()
    host, stranger = await _named(hs, f"Host {word}"), await hs.register()
    room = await hs.create_room(host, preset="private_chat")
    assert await _found(hs, stranger, word) == []
    world_readable = {"history_visibility": "world_readable"}
    await _set_state(hs, host, room, "m.room.history_visibility", world_readable)
    assert await _found(hs, stranger, word) == [host.user_id]
    await _set_state(hs, host, room, "m.room.history_visibility", {"history_visibility": "shared"})
    assert await _found(hs, stranger, word) == []


async def test_a_closed_room_that_stays_world_readable_keeps_its_members_found(
    hs: MatrixClient,
) -> None:
    word = _word()
    host, stranger = await _named(hs, f"Host {word}"), await hs.register()
    room = await hs.create_room(host, preset="public_chat")
    world_readable = {"history_visibility": "world_readable"}
    await _set_state(hs, host, room, "m.room.history_visibility", world_readable)
    await _set_state(hs, host, room, "m.room.join_rules", {"join_rule": "invite"})
    assert await _found(hs, stranger, word) == [host.user_id]
    await _set_state(hs, host, room, "m.room.history_visibility", {"history_visibility": "joined"})
    assert await _found(hs, stranger, word) == []
