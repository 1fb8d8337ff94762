"""The form in which events are served to clients (the spec's ClientEvent), and response
bodies as bytes: encoded once per response with orjson, events spliced in pre-encoded.

Every member of a busy room is woken by the same committed batch and is sent
the same events, so an event served to many (the in-memory tail of the log
holds one per event) is encoded once (`EncodedEvent`) and a per-response copy
of it put in the body (`RawJson`, spliced in as it is by `encode_body`): only
the age, and the sender's own transaction ID, differ from one response to the
next. rooms/rendering.py decides, for every endpoint, which form an event takes.

Signing never goes through here: canonical JSON stays `homeserver.events.canonical`.
"""

from __future__ import annotations

import json
import time
from typing import Any

import orjson

from homeserver.events.model import Event, JsonDict
from homeserver.events.redaction import redact_content
from homeserver.events.room_versions import LEGACY, RoomVersion


def client_event(
    event: Event,
    *,
    redacted_by: Event | None = None,
    version: RoomVersion = LEGACY,
    transaction_id: str | None = None,
    now_ms: int | None = None,
    include_room_id: bool = True,
    relations: JsonDict | None = None,
) -> JsonDict:
    """Serve `event`; a redacted event shows its content redacted by the algorithm of
    its room's `version`, and `redacted_because`; `relations` are its bundled
    aggregations (unsigned.m.relations)."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    content: dict[str, Any] = dict(event.content)
    unsigned: JsonDict = {"age": max(0, now - event.origin_server_ts)}
    if redacted_by is not None:
        content = redact_content(event.type, content, version)
        unsigned["redacted_because"] = client_event(redacted_by, now_ms=now)
    if transaction_id is not None:
        unsigned["transaction_id"] = transaction_id
    if relations:
        unsigned["m.relations"] = relations
    served: JsonDict = {
        "content": content,
        "event_id": event.event_id,
        "origin_server_ts": event.origin_server_ts,
        "sender": event.sender,
        "type": event.type,
        "unsigned": unsigned,
    }
    if include_room_id:
        served["room_id"] = event.room_id
    if event.state_key is not None:
        served["state_key"] = event.state_key
    if event.redacts is not None:
        # Clients written for room versions before 11 read `redacts` at the top level.
        served["redacts"] = event.redacts
    return served


class EncodedEvent:
    """One event in client form (no room ID, not redacted), encoded around its
    `unsigned` object: `head` ends just after `"unsigned":{"age":`, `tail` starts
    with the rest of `unsigned`'s closing brace. Same keys, same order as
    `client_event`, so a client cannot tell the two apart."""

    __slots__ = ("_served", "_served_at", "head", "origin_server_ts", "tail")

    def __init__(self, event: Event) -> None:
        served = client_event(event, now_ms=event.origin_server_ts, include_room_id=False)
        keys = list(served)
        at = keys.index("unsigned")
        before = {key: served[key] for key in keys[:at]}
        after = {key: served[key] for key in keys[at + 1 :]}
        # Unredacted, `unsigned` is {"age": ..., "transaction_id"?: ...}.
        self.head = orjson.dumps(before)[:-1] + b',"unsigned":{"age":'
        self.tail = b"}" + (b"," + orjson.dumps(after)[1:] if after else b"}")
        self.origin_server_ts = event.origin_server_ts
        # The last answer without a transaction ID: the members a commit wakes are
        # mostly served within the same millisecond.
        self._served_at = -1
        self._served = RawJson(b"")

    def serve(self, now_ms: int, transaction_id: str | None) -> RawJson:
        """The event as `client_event` serves it at `now_ms`, with the sender's own
        device's `transaction_id` when given."""
        if transaction_id is None and now_ms == self._served_at:
            return self._served
        age = str(max(0, now_ms - self.origin_server_ts)).encode()
        if transaction_id is None:
            self._served = RawJson(self.head + age + self.tail)
            self._served_at = now_ms
            return self._served
        txn = b',"transaction_id":' + orjson.dumps(transaction_id)
        return RawJson(self.head + age + txn + self.tail)


class RawJson:
    """A value of a response body that is already JSON."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RawJson) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)


# An event served: its client form as Python values, or already encoded.
ClientJson = JsonDict | RawJson


def encode_body(body: JsonDict) -> bytes:
    """A response body as JSON bytes; orjson, or the standard library for what orjson refuses
    (integers beyond 64 bits, which event JSON cannot hold but other content might)."""
    try:
        return orjson.dumps(body, default=_fragment)
    except TypeError:
        return json.dumps(body, default=_decoded).encode()


def _fragment(value: Any) -> orjson.Fragment:
    if isinstance(value, RawJson):
        return orjson.Fragment(value.raw)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _decoded(value: Any) -> Any:
    if isinstance(value, RawJson):
        return json.loads(value.raw)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
