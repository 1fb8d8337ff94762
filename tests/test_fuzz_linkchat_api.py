"""Schema fuzzing of /_linkchat/v1: schemathesis sends what spec/openapi.json allows, and
what it does not, to a real server on a real database; no answer may be a 5xx or stray
from the spec (status code, content type, body schema), and invalid input must be refused.

Bounded and deterministic: a fixed number of examples per operation and generation
mode, derandomized (the same requests on every run, whatever the machine's speed),
against a server on a fresh database of its own.
Generated IDs rarely name anything that exists, so in positive mode each path
parameter and body `user_id` is drawn either as generated or from the IDs of real
users, rooms and devices made for the test, so the answers are not all 400 and 404.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.processes import V3, ServerProcess

OPENAPI = Path(__file__).resolve().parent.parent / "spec" / "openapi.json"
# Per operation and mode: 21 operations x 2 modes x 25 examples, about 1,200 requests
# with the auth probes; some 30 s on a 2-core machine at load average 5.
EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    # A 2xx is asked again without the token and with a wrong one: both must be 401.
    ignored_auth,
]

# An explicit (empty) config: nothing is read from a schemathesis.toml lying around.
SCHEMA = schemathesis.openapi.from_path(OPENAPI, config=SchemathesisConfig())
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@dataclass(frozen=True)
class Server:
    base_url: str

    def call(self, method: str, path: str, token: str | None = None, body: Any = None) -> Any:
        """One request that must answer 200; its JSON body."""
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body if body is not None else {}).encode()
        request = urllib.request.Request(
            self.base_url + path, data=data, headers=headers, method=method
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            return json.loads(reply.read())

    def register(self, name: str) -> tuple[str, str]:
        body = {"username": name, "password": "pw-" + name, "auth": {"type": "m.login.dummy"}}
        answer = self.call("POST", V3 + "/register", body=body)
        return str(answer["user_id"]), str(answer["access_token"])


@dataclass(frozen=True)
class World:
    """The fuzzing user's token and real IDs to draw path parameters from."""

    base_url: str
    token: str
    ids: dict[str, list[str]]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, create_database: Callable[[], str]
) -> Iterator[Server]:
    process = ServerProcess(tmp_path_factory.mktemp("fuzz"), create_database())
    try:
        process.wait_ready()
        yield Server(process.base_url)
    finally:
        assert process.stop() == 0


@pytest.fixture(scope="module")
def people(server: Server) -> dict[str, tuple[str, str]]:
    """The fuzzing user, a friend of theirs and a stranger (registered once: scrypt is slow)."""
    fuzzer, friend, stranger = (server.register(name) for name in ("fuzzer", "friend", "stranger"))
    v1 = "/_linkchat/v1"
    server.call("POST", v1 + "/friends/requests", fuzzer[1], {"user_id": friend[0]})
    server.call("POST", f"{v1}/friends/requests/{_quoted(fuzzer[0])}/accept", friend[1])
    return {"fuzzer": fuzzer, "friend": friend, "stranger": stranger}


@pytest.fixture
def world(server: Server, people: dict[str, tuple[str, str]]) -> World:
    """A room, a channel and a device of the fuzzing user's, fresh for each operation:
    an earlier operation may have retired a device or left a room."""
    fuzzer_id, token = people["fuzzer"]
    room = server.call("POST", V3 + "/createRoom", token, {"invite": [people["friend"][0]]})
    channel = server.call(
        "POST", V3 + "/createRoom", token, {"creation_content": {"type": "com.linkchat.channel"}}
    )
    device = server.call("POST", "/_linkchat/v1/devices", token, {"display_name": "fuzzed"})
    users = [fuzzer_id, people["friend"][0], people["stranger"][0]]
    return World(
        server.base_url,
        token,
        {
            "user_id": users,
            "room_id": [room["room_id"], channel["room_id"], device["room_id"]],
            "device_user_id": [device["device_user_id"]],
        },
    )


def _quoted(value: str) -> str:
    return quote(value, safe="")


def _with_real_ids(case: schemathesis.Case, data: st.DataObject, ids: dict[str, list[str]]) -> None:
    """Swap generated IDs for real ones, sometimes; only in positive mode, where the
    request stays valid whichever it gets."""
    for name, value in list(case.path_parameters.items()):
        if name in ids:
            case.path_parameters[name] = data.draw(st.sampled_from([value, *ids[name]]))
    if isinstance(case.body, dict) and "user_id" in case.body:
        case.body["user_id"] = data.draw(st.sampled_from([case.body["user_id"], *ids["user_id"]]))


@pytest.mark.parametrize(
    "mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda mode: mode.value
)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_linkchat_api_answers_every_fuzzed_request_as_specified(
    operation: schemathesis.APIOperation, mode: GenerationMode, world: World
) -> None:
    checks = [*CHECKS, negative_data_rejection] if mode is GenerationMode.NEGATIVE else CHECKS
    headers = {"Authorization": f"Bearer {world.token}"}

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def answered_as_specified(case: schemathesis.Case, data: st.DataObject) -> None:
        if mode is GenerationMode.POSITIVE:
            _with_real_ids(case, data, world.ids)
        response = case.call(base_url=world.base_url, headers=headers, timeout=30)
        case.validate_response(response, checks=checks)

    answered_as_specified()
