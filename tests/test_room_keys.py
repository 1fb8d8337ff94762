"""Server-side key backup: /room_keys/version and /room_keys/keys, with the spec's rules and
errors."""

from __future__ import annotations

from typing import Any

from tests.matrix import MatrixClient, User

ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
ROOM = "!room:localhost"


def _key(index: int = 0, forwarded: int = 0, verified: bool = False, data: str = "a") -> Any:
    return {
        "first_message_index": index,
        "forwarded_count": forwarded,
        "is_verified": verified,
        "session_data": {"ciphertext": data, "ephemeral": "e", "mac": "m"},
    }


async def _new_backup(hs: MatrixClient, user: User) -> str:
    reply = await hs.ok(
        "POST",
        "room_keys/version",
        {"algorithm": ALGORITHM, "auth_data": {"public_key": "pk", "signatures": {}}},
        user=user,
    )
    return str(reply["version"])


async def test_no_backup_answers_404_not_found(hs: MatrixClient) -> None:
    alice = await hs.register()
    reply = await hs.request("GET", "room_keys/version", user=alice)
    assert reply.status == 404
    assert reply.errcode == "M_NOT_FOUND"
    assert (await hs.request("GET", "room_keys/version/1", user=alice)).errcode == "M_NOT_FOUND"


async def test_a_new_backup_version_is_the_current_one_with_etag_and_count(
    hs: MatrixClient,
) -> None:
    alice = await hs.register()
    first = await _new_backup(hs, alice)
    second = await _new_backup(hs, alice)
    assert int(second) > int(first)

    current = await hs.ok("GET", "room_keys/version", user=alice)
    assert current == {
        "algorithm": ALGORITHM,
        "auth_data": {"public_key": "pk", "signatures": {}},
        "version": second,
        "etag": current["etag"],
        "count": 0,
    }
    assert isinstance(current["etag"], str)
    assert (await hs.ok("GET", f"room_keys/version/{first}", user=alice))["version"] == first


async def test_keys_are_stored_counted_and_read_back_by_room_and_session(
    hs: MatrixClient,
) -> None:
    alice = await hs.register()
    version = await _new_backup(hs, alice)
    before = await hs.ok("GET", "room_keys/version", user=alice)

    put = await hs.ok(
        "PUT",
        f"room_keys/keys?version={version}",
        {"rooms": {ROOM: {"sessions": {"s1": _key(), "s2": _key(data="b")}}}},
        user=alice,
    )
    assert put["count"] == 2
    assert put["etag"] != before["etag"]
    one = await hs.ok("PUT", f"room_keys/keys/{ROOM}/s3?version={version}", _key(), user=alice)
    assert one["count"] == 3

    everything = await hs.ok("GET", f"room_keys/keys?version={version}", user=alice)
    assert set(everything["rooms"][ROOM]["sessions"]) == {"s1", "s2", "s3"}
    room = await hs.ok("GET", f"room_keys/keys/{ROOM}?version={version}", user=alice)
    assert room["sessions"]["s2"] == _key(data="b")
    session = await hs.ok("GET", f"room_keys/keys/{ROOM}/s1?version={version}", user=alice)
    assert session == _key()
    current = await hs.ok("GET", "room_keys/version", user=alice)
    assert (current["count"], current["etag"]) == (3, one["etag"])

    missing = await hs.request("GET", f"room_keys/keys/{ROOM}/nope?version={version}", user=alice)
    assert missing.errcode == "M_NOT_FOUND"
    empty = await hs.ok("GET", f"room_keys/keys/!other:localhost?version={version}", user=alice)
    assert empty == {"sessions": {}}


async def test_a_better_copy_of_a_session_replaces_the_one_backed_up(hs: MatrixClient) -> None:
    alice = await hs.register()
    version = await _new_backup(hs, alice)
    path = f"room_keys/keys/{ROOM}/s?version={version}"

    async def stored() -> Any:
        return await hs.ok("GET", path, user=alice)

    await hs.ok("PUT", path, _key(index=5, forwarded=2, data="first"), user=alice)
    # A higher first_message_index loses; a lower one wins.
    await hs.ok("PUT", path, _key(index=6, data="later index"), user=alice)
    assert (await stored())["session_data"]["ciphertext"] == "first"
    await hs.ok("PUT", path, _key(index=3, forwarded=9, data="lower index"), user=alice)
    assert (await stored())["session_data"]["ciphertext"] == "lower index"
    # Same index: the lower forwarded_count wins.
    await hs.ok("PUT", path, _key(index=3, forwarded=1, data="less forwarded"), user=alice)
    assert (await stored())["session_data"]["ciphertext"] == "less forwarded"
    # A verified copy beats an unverified one, whatever its index...
    await hs.ok("PUT", path, _key(index=9, forwarded=9, verified=True, data="verified"), user=alice)
    assert (await stored())["session_data"]["ciphertext"] == "verified"
    # ...and an unverified one never replaces a verified one.
    unchanged = await hs.ok("GET", "room_keys/version", user=alice)
    reply = await hs.ok("PUT", path, _key(index=0, data="unverified"), user=alice)
    assert (await stored())["session_data"]["ciphertext"] == "verified"
    assert reply["etag"] == unchanged["etag"]


async def test_writing_to_an_old_version_is_refused_with_the_current_one(
    hs: MatrixClient,
) -> None:
    alice = await hs.register()
    old = await _new_backup(hs, alice)
    current = await _new_backup(hs, alice)
    for version in (old, "999", "junk"):
        reply = await hs.request(
            "PUT", f"room_keys/keys/{ROOM}/s?version={version}", _key(), user=alice
        )
        assert reply.status == 403, version
        assert reply.errcode == "M_WRONG_ROOM_KEYS_VERSION"
        assert reply.body["current_version"] == current
    unknown = await hs.request("GET", "room_keys/keys?version=999", user=alice)
    assert (unknown.status, unknown.errcode) == (404, "M_NOT_FOUND")
    missing = await hs.request("GET", "room_keys/keys", user=alice)
    assert missing.errcode == "M_MISSING_PARAM"


async def test_writing_without_any_backup_is_404(hs: MatrixClient) -> None:
    alice = await hs.register()
    reply = await hs.request("PUT", f"room_keys/keys/{ROOM}/s?version=1", _key(), user=alice)
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")


async def test_deleting_keys_counts_down_and_moves_the_etag(hs: MatrixClient) -> None:
    alice = await hs.register()
    version = await _new_backup(hs, alice)
    body = {
        "rooms": {
            ROOM: {"sessions": {"a": _key(), "b": _key()}},
            "!x:l": {"sessions": {"c": _key()}},
        }
    }
    put = await hs.ok("PUT", f"room_keys/keys?version={version}", body, user=alice)

    one = await hs.ok("DELETE", f"room_keys/keys/{ROOM}/a?version={version}", user=alice)
    assert one["count"] == 2 and one["etag"] != put["etag"]
    room = await hs.ok("DELETE", f"room_keys/keys/{ROOM}?version={version}", user=alice)
    assert room["count"] == 1
    everything = await hs.ok("DELETE", f"room_keys/keys?version={version}", user=alice)
    assert everything["count"] == 0
    assert await hs.ok("GET", f"room_keys/keys?version={version}", user=alice) == {"rooms": {}}


async def test_a_deleted_version_is_gone_and_its_number_never_reused(hs: MatrixClient) -> None:
    alice = await hs.register()
    version = await _new_backup(hs, alice)
    await hs.ok("PUT", f"room_keys/keys/{ROOM}/s?version={version}", _key(), user=alice)

    await hs.ok("DELETE", f"room_keys/version/{version}", user=alice)

    assert (await hs.request("GET", "room_keys/version", user=alice)).status == 404
    gone = await hs.request("GET", f"room_keys/keys?version={version}", user=alice)
    assert gone.errcode == "M_NOT_FOUND"
    again = await hs.request("DELETE", f"room_keys/version/{version}", user=alice)
    assert again.errcode == "M_NOT_FOUND"
    assert int(await _new_backup(hs, alice)) > int(version)


async def test_a_version_auth_data_is_updated_but_not_its_algorithm(hs: MatrixClient) -> None:
    alice = await hs.register()
    version = await _new_backup(hs, alice)
    new_auth = {"public_key": "pk2", "signatures": {"x": {}}}

    await hs.ok(
        "PUT",
        f"room_keys/version/{version}",
        {"algorithm": ALGORITHM, "auth_data": new_auth, "version": version},
        user=alice,
    )
    assert (await hs.ok("GET", "room_keys/version", user=alice))["auth_data"] == new_auth

    other = await hs.request(
        "PUT", f"room_keys/version/{version}", {"algorithm": "x", "auth_data": {}}, user=alice
    )
    assert (other.status, other.errcode) == (400, "M_INVALID_PARAM")
    mismatch = await hs.request(
        "PUT",
        f"room_keys/version/{version}",
        {"algorithm": ALGORITHM, "auth_data": {}, "version": "77"},
        user=alice,
    )
    assert (mismatch.status, mismatch.errcode) == (400, "M_INVALID_PARAM")
    unknown = await hs.request(
        "PUT", "room_keys/version/77", {"algorithm": ALGORITHM, "auth_data": {}}, user=alice
    )
    assert unknown.errcode == "M_NOT_FOUND"


async def test_backups_are_private_to_their_owner(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    version = await _new_backup(hs, alice)
    await hs.ok("PUT", f"room_keys/keys/{ROOM}/s?version={version}", _key(), user=alice)
    assert (await hs.request("GET", "room_keys/version", user=bob)).status == 404
    stranger = await hs.request("GET", f"room_keys/keys?version={version}", user=bob)
    assert stranger.status == 404
    assert (await hs.request("GET", "room_keys/version")).status == 401


async def test_malformed_keys_are_bad_json(hs: MatrixClient) -> None:
    alice = await hs.register()
    version = await _new_backup(hs, alice)
    for body in (
        {"rooms": []},
        {"rooms": {ROOM: {"sessions": {"s": {"first_message_index": -1}}}}},
        {"rooms": {ROOM: {"sessions": {"s": {**_key(), "is_verified": "yes"}}}}},
    ):
        reply = await hs.request("PUT", f"room_keys/keys?version={version}", body, user=alice)
        assert (reply.status, reply.errcode) == (400, "M_BAD_JSON"), body
    bad = await hs.request("POST", "room_keys/version", {"algorithm": ALGORITHM}, user=alice)
    assert bad.errcode == "M_BAD_JSON"
