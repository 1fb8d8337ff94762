"""spec/openapi.json: valid OpenAPI 3.1, exactly the /_linkchat/v1 routes served, true answers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from tests.matrix import MatrixClient, User

SPEC = Path(__file__).resolve().parent.parent / "spec"
OPENAPI = SPEC / "openapi.json"
V1 = "/_linkchat/v1/"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
MARKDOWN_LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#([^)\s]+))?\)")


def _document() -> dict[str, Any]:
    return dict(json.loads(OPENAPI.read_text()))


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def _served_operations(hs: MatrixClient) -> set[tuple[str, str]]:
    """(method, path template) of each /_linkchat/v1 route, read as tests/test_bad_input.py does."""
    served = set()
    for resource in hs.app.router.resources():
        info = resource.get_info()
        template = str(info.get("path") or info.get("formatter") or "")
        if not template.startswith(V1):
            continue
        # aiohttp writes a parameter with a pattern as {name:pattern}; OpenAPI as {name}.
        template = re.sub(r"\{([^}:]+):[^}]*\}", r"{\1}", template)
        served.update(
            (route.method, template)
            for route in resource
            if route.method not in ("HEAD", "OPTIONS", "*")
        )
    return served


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _schema_of(ref: str) -> dict[str, Any]:
    """The JSON Schema that `ref` (`file#/$defs/name`, relative to spec/) names."""
    file_name, _, pointer = ref.partition("#")
    bundle = json.loads((SPEC / file_name).read_text())
    return {**bundle, "$ref": "#" + pointer}


def _markdown_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file."""
    anchors = set()
    for line in markdown.splitlines():
        heading = re.match(r"#{1,6} (.+)", line)
        if heading:
            text = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


# --- the document itself -------------------------------------------------------------


def test_document_is_valid_openapi_3_1() -> None:
    document = _document()
    assert document["openapi"] == "3.1.0"
    # The base URI is the file's own location, so that the bodies' `$ref`s to the sibling
    # *.schema.json files resolve (and those schemas are checked too).
    validate(document, base_uri=OPENAPI.as_uri(), cls=OpenAPIV31SpecValidator)


async def test_document_lists_exactly_the_linkchat_routes_served(hs: MatrixClient) -> None:
    served = _served_operations(hs)
    documented = {(method, path) for method, path, _ in _operations(_document())}
    assert len(served) > 20  # the router was really read
    assert sorted(served - documented) == [], "served but missing from spec/openapi.json"
    assert sorted(documented - served) == [], "in spec/openapi.json but not served"


def test_every_ref_names_an_existing_definition() -> None:
    document = _document()
    refs = set(_refs(document))
    assert refs
    for ref in refs:
        file_name, _, pointer = ref.partition("#")
        if not file_name:
            target: Any = document
            for part in pointer.removeprefix("/").split("/"):
                assert isinstance(target, dict) and part in target, ref
                target = target[part]
            continue
        assert (SPEC / file_name).is_file(), ref
        definition = pointer.removeprefix("/$defs/")
        assert pointer == f"/$defs/{definition}", f"{ref} is not a $defs entry"
        assert definition in json.loads((SPEC / file_name).read_text())["$defs"], ref


def test_every_body_is_a_spec_schema_by_reference() -> None:
    """Bodies point at the *.schema.json files the other tests hold the server to, never copies."""
    bodies = []
    for method, path, operation in _operations(_document()):
        contents = [operation.get("requestBody", {}).get("content", {})]
        contents += [
            response.get("content", {})
            for status, response in operation["responses"].items()
            if status.startswith("2")
        ]
        for content in contents:
            bodies += [(method, path, media["schema"]) for media in content.values()]
    assert bodies
    for method, path, schema in bodies:
        assert list(schema) == ["$ref"], (method, path, schema)
        assert re.fullmatch(r"[a-z_]+\.schema\.json#/\$defs/\w+", schema["$ref"]), (method, path)


def test_every_link_to_a_markdown_spec_lands_on_a_section() -> None:
    links = MARKDOWN_LINK.findall(OPENAPI.read_text())
    assert links
    for file_name, anchor in links:
        markdown = SPEC / file_name
        assert markdown.is_file(), file_name
        if anchor:
            assert anchor in _markdown_anchors(markdown.read_text()), f"{file_name}#{anchor}"


# --- what the server answers is what the document says ---------------------------------


async def _exchange(
    hs: MatrixClient,
    user: User,
    method: str,
    template: str,
    body: Any = None,
    *,
    query: str = "",
    **path_params: str,
) -> Any:
    """Calls the operation; its request and answer must match the schemas the document names."""
    operation = _document()["paths"][template][method.lower()]
    if body is not None:
        request_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        jsonschema.Draft202012Validator(_schema_of(request_ref)).validate(body)
    path = template.format(**{name: quote(value, safe="") for name, value in path_params.items()})
    reply = await hs.request(method, path + query, body, user=user)
    status, success = next(
        (code, response)
        for code, response in operation["responses"].items()
        if code.startswith("2")
    )
    assert reply.status == int(status), (method, path, reply)
    response_ref = success["content"]["application/json"]["schema"]["$ref"]
    jsonschema.Draft202012Validator(_schema_of(response_ref)).validate(reply.body)
    return reply.body


async def test_friends_and_blocks_answer_as_the_document_says(hs: MatrixClient) -> None:
    alice, bob, carol = await hs.register(), await hs.register(), await hs.register()
    assert await _exchange(hs, alice, "GET", V1 + "friends") == {"friends": []}
    assert await _exchange(hs, alice, "GET", V1 + "blocks") == {"blocks": []}

    requests = V1 + "friends/requests"
    sent = await _exchange(hs, alice, "POST", requests, {"user_id": bob.user_id, "message": "hi"})
    assert sent == {"status": "pending"}
    pending = await _exchange(hs, bob, "GET", requests)
    assert [request["user_id"] for request in pending["incoming"]] == [alice.user_id]
    accepted = await _exchange(
        hs, bob, "POST", requests + "/{user_id}/accept", {}, user_id=alice.user_id
    )
    assert accepted["user_id"] == alice.user_id
    friends = await _exchange(hs, alice, "GET", V1 + "friends")
    assert [friend["user_id"] for friend in friends["friends"]] == [bob.user_id]

    await _exchange(hs, alice, "POST", requests, {"user_id": carol.user_id})
    await _exchange(hs, alice, "DELETE", requests + "/{user_id}", user_id=carol.user_id)
    await _exchange(hs, carol, "POST", requests, {"user_id": alice.user_id})
    await _exchange(hs, alice, "POST", requests + "/{user_id}/decline", user_id=carol.user_id)
    await _exchange(hs, alice, "DELETE", V1 + "friends/{user_id}", user_id=bob.user_id)

    await _exchange(hs, alice, "PUT", V1 + "blocks/{user_id}", {}, user_id=carol.user_id)
    blocks = await _exchange(hs, alice, "GET", V1 + "blocks")
    assert [block["user_id"] for block in blocks["blocks"]] == [carol.user_id]
    await _exchange(hs, alice, "DELETE", V1 + "blocks/{user_id}", user_id=carol.user_id)


async def test_roles_and_channels_answer_as_the_document_says(hs: MatrixClient) -> None:
    owner, subscriber = await hs.register(), await hs.register()
    channel = await hs.create_room(
        owner, preset="public_chat", creation_content={"type": "com.linkchat.channel"}
    )
    await hs.join(subscriber, channel)
    roles = V1 + "rooms/{room_id}/roles"
    await _exchange(
        hs,
        owner,
        "PUT",
        roles + "/{user_id}",
        {"role": "moderator"},
        room_id=channel,
        user_id=subscriber.user_id,
    )
    listed = await _exchange(hs, owner, "GET", roles, room_id=channel)
    assert listed == {owner.user_id: "owner", subscriber.user_id: "moderator"}
    described = await _exchange(hs, subscriber, "GET", V1 + "channels/{room_id}", room_id=channel)
    assert (described["subscriber_count"], described["your_role"]) == (2, "moderator")


async def test_devices_answer_as_the_document_says(hs: MatrixClient) -> None:
    owner, friend = await hs.register(), await hs.register()
    devices = V1 + "devices"
    created = await _exchange(hs, owner, "POST", devices, {"display_name": "kiosk"})
    device = created["device_user_id"]
    await _exchange(
        hs, owner, "POST", devices + "/{device_user_id}/login_token", device_user_id=device
    )
    grants = devices + "/{device_user_id}/grants"
    await _exchange(hs, owner, "POST", grants, {"user_id": friend.user_id}, device_user_id=device)
    listed = await _exchange(hs, owner, "GET", devices)
    assert [(d["device_user_id"], d["grants"]) for d in listed["devices"]] == [
        (device, [friend.user_id])
    ]
    commands = devices + "/{device_user_id}/commands"
    pending = await _exchange(
        hs, owner, "GET", commands, query="?status=pending", device_user_id=device
    )
    assert pending == {"commands": []}
    await _exchange(
        hs, owner, "DELETE", grants + "/{user_id}", device_user_id=device, user_id=friend.user_id
    )
    await _exchange(hs, owner, "DELETE", devices + "/{device_user_id}", device_user_id=device)


async def test_sync_stream_answers_the_upgrade_as_the_document_says(hs: MatrixClient) -> None:
    responses = _document()["paths"][V1 + "sync/stream"]["get"]["responses"]
    assert [code for code in responses if int(code) < 400] == ["101"]
    user = await hs.register()
    stream = await hs.http.ws_connect(
        V1 + "sync/stream", headers={"Authorization": f"Bearer {user.token}"}
    )
    await stream.close()
