"""Matrix filters: their models, matching, event_fields, and the filters users upload.

A filter a user uploads is a fact in their account chain (type FILTER, keyed by
its filter ID); the projection keeps it in `user_filters`. Its ID is derived
from its canonical JSON, so uploading the same filter twice answers the same ID
and appends nothing.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Literal, TypeVar

import asyncpg
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from homeserver.errors import MatrixError, bad_json, invalid_param, not_found
from homeserver.events import types
from homeserver.events.canonical import encode
from homeserver.events.client_json import decode_client_json
from homeserver.events.model import Draft, Event, JsonDict
from homeserver.events.validation import check_event_values
from homeserver.log.appender import Appender
from homeserver.store import filters as filter_store
from homeserver.store.history import EventSelection

# The spec asks servers to cap `limit` "to avoid resource exhaustion".
MAX_LIMIT = 1000
DEFAULT_TIMELINE_LIMIT = 10
_CACHE_SIZE = 10_000
# Inline filters are cached by their text; a long one is parsed afresh each time
# rather than letting clients fill memory with 10,000 large strings.
_CACHED_INLINE_CHARS = 1024


@lru_cache(maxsize=4096)
def _glob(pattern: str) -> re.Pattern[str]:
    """An event type pattern: `*` matches any sequence of characters (spec, EventFilter)."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def _matches_any(value: str, patterns: list[str]) -> bool:
    return any(_glob(pattern).fullmatch(value) for pattern in patterns)


def _ids(sigil: str, what: str) -> Callable[[list[str] | None], list[str] | None]:
    """A check that every item of a list is a user ID (`@`) or room ID (`!`), as
    Synapse's filter schema asks (its `matrix_user_id` and `matrix_room_id` formats)."""

    def check(values: list[str] | None) -> list[str] | None:
        for value in values or ():
            if not value.startswith(sigil) or (sigil == "@" and ":" not in value):
                raise PydanticCustomError(
                    INVALID_ID,
                    "'{value}' is not a {what}",
                    {
                        "value": value[:255],
                        "what": what,
                    },
                )
        return values

    return check


# A value of the right type that is not what the field holds: M_INVALID_PARAM, not
# M_BAD_JSON.
INVALID_ID = "invalid_id"
_user_ids = _ids("@", "user ID")
_room_ids = _ids("!", "room ID")


class EventFilter(BaseModel):
    """The spec's EventFilter. Absent lists include everything; `not_*` wins over the list."""

    # Strict: "limit": "5" or "types": "m.room.message" is a client bug worth a 400.
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    limit: int | None = None
    types: list[str] | None = None
    not_types: list[str] | None = None
    senders: list[str] | None = None
    not_senders: list[str] | None = None

    _senders_are_users = field_validator("senders", "not_senders")(_user_ids)

    @field_validator("limit")
    @classmethod
    def _bounded_limit(cls, limit: int | None) -> int | None:
        # The spec says "greater than 0", but clients send 0 to ask for no
        # timeline at all, and Synapse serves them; negative is meaningless.
        if limit is not None and limit < 0:
            raise ValueError("must be a non-negative integer")
        return min(limit, MAX_LIMIT) if limit is not None else None

    def limit_or(self, default: int) -> int:
        return self.limit if self.limit is not None else default

    def allows_type(self, event_type: str) -> bool:
        if self.not_types and _matches_any(event_type, self.not_types):
            return False
        return self.types is None or _matches_any(event_type, self.types)

    def allows_sender(self, sender: str | None) -> bool:
        if sender is None:
            return self.senders is None
        if self.not_senders and sender in self.not_senders:
            return False
        return self.senders is None or sender in self.senders

    def allows(self, event_type: str, sender: str | None = None) -> bool:
        """Whether an event (or presence/account data item) of this type and sender passes."""
        return self.allows_type(event_type) and self.allows_sender(sender)


class RoomEventFilter(EventFilter):
    """The spec's RoomEventFilter: an EventFilter that also selects rooms and URLs."""

    rooms: list[str] | None = None
    not_rooms: list[str] | None = None
    contains_url: bool | None = None
    lazy_load_members: bool = False
    include_redundant_members: bool = False
    unread_thread_notifications: bool = False

    _rooms_are_rooms = field_validator("rooms", "not_rooms")(_room_ids)

    def allows_room(self, room_id: str) -> bool:
        if self.not_rooms and room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms

    def allows_event(self, event: Event) -> bool:
        """Room, type, sender and `contains_url` (a string `url` in the content)."""
        if not self.allows_room(event.room_id) or not self.allows(event.type, event.sender):
            return False
        if self.contains_url is not None:
            return isinstance(event.content.get("url"), str) == self.contains_url
        return True

    def selection(self) -> EventSelection:
        """The same test as `allows_event` (bar the room), for the database to apply."""
        return EventSelection(
            types=self.types,
            not_types=self.not_types or [],
            senders=self.senders,
            not_senders=self.not_senders or [],
            contains_url=self.contains_url,
        )


class RoomFilter(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    rooms: list[str] | None = None
    not_rooms: list[str] | None = None
    include_leave: bool = False
    state: RoomEventFilter = RoomEventFilter()
    timeline: RoomEventFilter = RoomEventFilter()
    ephemeral: RoomEventFilter = RoomEventFilter()
    account_data: RoomEventFilter = RoomEventFilter()

    _rooms_are_rooms = field_validator("rooms", "not_rooms")(_room_ids)

    def allows_room(self, room_id: str) -> bool:
        """Applied before the per-section filters (spec, RoomFilter)."""
        if self.not_rooms and room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms


class Filter(BaseModel):
    """The spec's Filter, as uploaded to /user/{userId}/filter or given inline to /sync."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    event_fields: list[str] | None = None
    event_format: Literal["client", "federation"] = "client"
    presence: EventFilter = EventFilter()
    account_data: EventFilter = EventFilter()
    room: RoomFilter = RoomFilter()

    @property
    def timeline_limit(self) -> int:
        return self.room.timeline.limit_or(DEFAULT_TIMELINE_LIMIT)


_Model = TypeVar("_Model", bound=BaseModel)


def _shape_error(what: str, error: ValidationError) -> MatrixError:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = f"{what}{'.' + where if where else ''}: {first['msg']}"
    return invalid_param(message) if first["type"] == INVALID_ID else bad_json(message)


def parse_filter(value: object) -> Filter:
    """A Filter from decoded JSON; 400 M_BAD_JSON naming the field when it has the wrong shape."""
    return _validated(Filter, value)


def parse_room_event_filter(text: str | None) -> RoomEventFilter:
    """The `filter` query parameter of /messages and /context: inline RoomEventFilter JSON."""
    if text is None or not text.strip():
        return RoomEventFilter()
    return _validated(RoomEventFilter, _decode_inline(text))


def _validated(model: type[_Model], value: object) -> _Model:
    if not isinstance(value, dict):
        raise bad_json("filter: must be a JSON object")
    try:
        return model.model_validate(value)
    except ValidationError as error:
        raise _shape_error("filter", error) from None


def _decode_inline(text: str) -> Any:
    # The decoder request bodies use: its depth limit keeps a deeply nested filter
    # from Python's recursion limit, its string check keeps U+0000 from PostgreSQL.
    return decode_client_json(text, "filter")


def split_field_path(path: str) -> list[str]:
    """A dot-separated property path (spec appendix): `\\.` is a dot, `\\\\` a backslash;
    any other backslash is literal."""
    parts: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(path):
        char = path[index]
        if char == "\\" and index + 1 < len(path) and path[index + 1] in ".\\":
            current.append(path[index + 1])
            index += 2
            continue
        if char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return parts


def apply_event_fields(served: JsonDict, fields: list[str]) -> JsonDict:
    """Only the fields `event_fields` names (paths that are absent are skipped)."""
    result: JsonDict = {}
    for field in fields:
        parts = split_field_path(field)
        source: Any = served
        for part in parts[:-1]:
            source = source.get(part) if isinstance(source, dict) else None
        if not isinstance(source, dict) or parts[-1] not in source:
            continue
        target = result
        for part in parts[:-1]:
            child = target.get(part)
            if not isinstance(child, dict):
                child = target[part] = {}
            target = child
        target[parts[-1]] = copy.deepcopy(source[parts[-1]])
    return result


_FILTER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _filter_id(body: JsonDict) -> str:
    # Cannot start with "{" (spec): the URL-safe base64 alphabet has no "{".
    digest = hashlib.sha256(encode(body)).digest()[:12]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


# What a sync without a filter gets (frozen, so one for all).
_NO_FILTER = Filter()


class FilterService:
    def __init__(self, pool: asyncpg.Pool, appender: Appender) -> None:
        self._pool = pool
        self._appender = appender
        # A stored filter never changes (its ID is its content), so resolving it
        # once per user and ID is enough; inline filters are cached by their text.
        self._resolved: OrderedDict[tuple[str, str], Filter] = OrderedDict()

    async def create(self, user_id: str, body: JsonDict) -> str:
        """Store a filter in the user's account chain; returns its ID."""
        check_event_values(body, "filter")
        parse_filter(body)
        filter_id = _filter_id(body)
        async with self._pool.acquire() as conn:
            existing = await filter_store.user_filter(conn, user_id, filter_id)
        if existing is None:
            await self._appender.append(
                Draft(user_id, user_id, types.FILTER, {"filter": body}, state_key=filter_id)
            )
        return filter_id

    async def get(self, user_id: str, filter_id: str) -> JsonDict:
        async with self._pool.acquire() as conn:
            found = await filter_store.user_filter(conn, user_id, filter_id)
        if found is None:
            raise not_found("No such filter.")
        return found

    async def resolve(self, user_id: str, param: str | None) -> Filter:
        """The filter a /sync `filter` parameter names: a filter ID or inline JSON ('{...}').

        Unknown IDs are 400 M_INVALID_PARAM, as Synapse answers /sync."""
        if param is None or param == "":
            return _NO_FILTER
        key = (user_id if not param.startswith("{") else "", param)
        if (cached := self._resolved.get(key)) is not None:
            self._resolved.move_to_end(key)
            return cached
        if param.startswith("{"):
            resolved = parse_filter(_decode_inline(param))
        elif not _FILTER_ID.fullmatch(param):
            # Not one this server could have made (_filter_id), so no query is needed;
            # nor could PostgreSQL take one holding U+0000.
            raise invalid_param("No such filter.")
        else:
            async with self._pool.acquire() as conn:
                body = await filter_store.user_filter(conn, user_id, param)
            if body is None:
                raise invalid_param("No such filter.")
            resolved = parse_filter(body)
        if len(param) <= _CACHED_INLINE_CHARS:
            self._resolved[key] = resolved
        while len(self._resolved) > _CACHE_SIZE:
            self._resolved.popitem(last=False)
        return resolved
