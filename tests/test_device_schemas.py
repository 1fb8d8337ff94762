"""A device's argument schemas are hostile input: checking them never stalls the server."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from homeserver.device_control import rules, schemas
from homeserver.errors import MatrixError
from homeserver.events import types
from homeserver.events.model import STATE_CHANGED
from homeserver.projections.room_state import RoomState, StateEntry
from tests.devices import (
    CAPABILITIES,
    V1,
    Paired,
    create_device,
    device_login,
    publish_capabilities,
    send_command,
)
from tests.matrix import MatrixClient, Reply
from tests.processes import V3, ServerProcess, call, register

# Each extra character doubles the time Python's backtracking `re` needs to
# find that this does not match: 25 took 1.8 s, 5000 would take forever.
PATHOLOGICAL = "^(a+)+$"
NAME_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "pattern": PATHOLOGICAL}},
    "required": ["name"],
}


@pytest.fixture
def server(fresh_dsn: str, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path, fresh_dsn)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


async def _request(
    http: aiohttp.ClientSession, method: str, url: str, token: str, body: Any
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"}
    async with http.request(method, url, json=body, headers=headers) as reply:
        return reply.status, await reply.json()


async def test_a_pathological_pattern_does_not_stall_other_users(server: ServerProcess) -> None:
    base = server.base_url
    async with aiohttp.ClientSession() as http:
        alice = await register(http, base, "alice")
        bob = await register(http, base, "bob")
        bobs_room = (await call(http, "POST", f"{base}{V3}/createRoom", bob["access_token"], {}))[
            "room_id"
        ]
        created = await call(
            http, "POST", f"{base}{V1}/devices", alice["access_token"], {"display_name": "pc"}
        )
        device = await call(
            http,
            "POST",
            f"{base}{V3}/login",
            None,
            {"type": "m.login.token", "token": created["login_token"]},
        )
        room = created["room_id"]
        capabilities = {"actions": {"greet": {"args_schema": NAME_SCHEMA}}}
        await call(
            http,
            "PUT",
            f"{base}{V3}/rooms/{quote(room)}/state/{CAPABILITIES}",
            device["access_token"],
            capabilities,
        )

        def command(name: str) -> Any:
            body = {"action": "greet", "args": {"name": name}, "ttl_ms": 60_000}
            txn = secrets.token_hex(6)
            url = f"{base}{V3}/rooms/{quote(room)}/send/com.linkchat.device.command/{txn}"
            return _request(http, "PUT", url, alice["access_token"], body)

        def bobs_message(n: int) -> Any:
            url = f"{base}{V3}/rooms/{quote(bobs_room)}/send/m.room.message/m{n}"
            return _request(
                http, "PUT", url, bob["access_token"], {"msgtype": "m.text", "body": "hi"}
            )

        # The commands and bob's messages all go in together; with a backtracking
        # engine the refused command would hold the server (and its append lock)
        # for far longer than the deadline, and bob's messages with it.
        async with asyncio.timeout(60):
            replies = await asyncio.gather(
                command("a" * 5000 + "!"),
                *(bobs_message(n) for n in range(5)),
                command("a" * 5000),
            )
    refused, *messages, accepted = replies
    assert refused[0] == 400 and refused[1]["errcode"] == "M_BAD_JSON", refused
    assert "does not match" in refused[1]["error"]
    assert all(status == 200 for status, _ in messages), messages
    assert accepted[0] == 200, accepted


async def _paired(hs: MatrixClient, schema: dict[str, Any]) -> tuple[Paired, Reply]:
    owner = await hs.register()
    created = await create_device(hs, owner)
    device = await device_login(hs, created["login_token"])
    content = {"actions": {"act": {"args_schema": schema}}}
    reply = await publish_capabilities(hs, device, created["room_id"], content)
    return Paired(owner, device, created["room_id"]), reply


def _refused(reply: Reply, *words: str) -> bool:
    return (reply.status, reply.errcode) == (400, "M_BAD_JSON") and all(
        word in reply.body["error"] for word in words
    )


async def test_patterns_re2_cannot_run_in_linear_time_are_refused_when_published(
    hs: MatrixClient,
) -> None:
    for pattern in (r"^(a)\1$", r"^(?=a)", r"(?<!x)y"):
        schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": pattern}}}
        _, reply = await _paired(hs, schema)
        assert _refused(reply, "content.actions.act.args_schema", "RE2"), (pattern, reply)
        schema = {"type": "object", "patternProperties": {pattern: {}}}
        _, reply = await _paired(hs, schema)
        assert _refused(reply, "RE2"), (pattern, reply)


async def test_argument_schemas_are_bounded_in_size_and_depth(hs: MatrixClient) -> None:
    big = {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(400)}}
    _, reply = await _paired(hs, big)
    assert _refused(reply, "content.actions.act.args_schema", "bytes"), reply
    deep: dict[str, Any] = {"type": "object"}
    for _ in range(40):
        deep = {"properties": {"x": deep}}
    _, reply = await _paired(hs, deep)
    assert _refused(reply, "nested deeper"), reply


async def test_unevaluated_keywords_are_refused_when_published(hs: MatrixClient) -> None:
    # jsonschema evaluates them by walking the schema again outside the validator.
    for keyword in ("unevaluatedProperties", "unevaluatedItems"):
        _, reply = await _paired(hs, {"type": "object", keyword: False})
        assert _refused(reply, keyword), reply


async def test_a_command_too_costly_to_check_is_refused(hs: MatrixClient) -> None:
    # 3000 items, each checked against 150 subschemas: the work is the product.
    costly = {
        "type": "object",
        "properties": {
            "xs": {"type": "array", "items": {"allOf": [{"type": "string", "minLength": 1}] * 150}}
        },
    }
    paired, published = await _paired(hs, costly)
    assert published.status == 200, published
    reply = await send_command(hs, paired.owner, paired.room_id, "act", {"xs": ["a"] * 3000})
    assert _refused(reply, "takes too long"), reply
    reply = await send_command(hs, paired.owner, paired.room_id, "act", {"xs": ["a"] * 10})
    assert reply.status == 200, reply


async def test_a_chain_of_refs_that_doubles_at_every_link_is_refused(hs: MatrixClient) -> None:
    # Every link tries the next one twice: 2**40 checks for one value.
    links: dict[str, Any] = {
        f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
        for i in range(40)
    }
    links["d40"] = False
    schema = {"$defs": links, "type": "object", "properties": {"x": {"$ref": "#/$defs/d0"}}}
    paired, published = await _paired(hs, schema)
    assert published.status == 200, published
    reply = await send_command(hs, paired.owner, paired.room_id, "act", {"x": 1})
    assert _refused(reply, "takes too long"), reply


async def test_command_args_are_bounded_in_size(hs: MatrixClient) -> None:
    paired, _ = await _paired(hs, {"type": "object"})
    reply = await send_command(hs, paired.owner, paired.room_id, "act", {"x": "y" * 20_000})
    assert (reply.status, reply.errcode) == (413, "M_TOO_LARGE"), reply
    reply = await send_command(hs, paired.owner, paired.room_id, "act", {"x": "y" * 1000})
    assert reply.status == 200, reply


def test_unique_items_compares_json_values_not_python_ones() -> None:
    schema = {"type": "array", "uniqueItems": True}
    for unique in ([1, True], [0, False], [{"a": 1}, {"a": 2}], [[1, 2], [2, 1]], [1, "1"]):
        schemas.check_args({"properties": {"xs": schema}}, {"xs": unique})
    for repeated in ([{"a": 1, "b": 2}, {"b": 2, "a": 1}], [[1, {"x": None}], [1, {"x": None}]]):
        with pytest.raises(schemas.ArgsInvalid):
            schemas.check_args({"properties": {"xs": schema}}, {"xs": repeated})


def test_a_command_checked_against_capabilities_replaced_since_is_sent_back_to_be_checked() -> None:
    room, owner, device = "!r:hs", "@a:hs", "@a.dev.x1y2z3w4:hs"

    def state(capabilities_id: str) -> RoomState:
        create = {"type": types.DEVICE_ROOM_TYPE, "device_user_id": device, "owner_user_id": owner}
        entries = {
            (types.CREATE, ""): StateEntry("$create", owner, create),
            (types.MEMBER, device): StateEntry("$join", device, {"membership": "join"}),
            (CAPABILITIES, ""): StateEntry(capabilities_id, device, {"actions": {}}),
        }
        return RoomState(room, None, entries)

    content = {"action": "act", "args": {}, "ttl_ms": 1000}
    command = types.DEVICE_COMMAND
    checked = rules.CheckedCommand(room, owner, command, content, capabilities_id="$v1")
    rules.authorize(state("$v1"), checked, None)
    with pytest.raises(MatrixError) as refused:
        rules.authorize(state("$v2"), checked, None)
    assert refused.value.errcode == STATE_CHANGED
    # The check's verdict is raised in its place, after the rules of who may send.
    problem = MatrixError(400, "M_BAD_JSON", "content.args: no")
    refusing = rules.CheckedCommand(
        room, owner, types.DEVICE_COMMAND, content, capabilities_id="$v1", problem=problem
    )
    with pytest.raises(MatrixError) as refused:
        rules.authorize(state("$v1"), refusing, None)
    assert refused.value is problem
    from_device = rules.CheckedCommand(
        room, device, types.DEVICE_COMMAND, content, capabilities_id="$v1", problem=problem
    )
    with pytest.raises(MatrixError) as refused:
        rules.authorize(state("$v1"), from_device, None)
    assert refused.value.errcode == "M_FORBIDDEN"
