"""What the report facts of the moderation chain hold (events/types.py).

Each is a fact of its own (not state), sent by the reporter; when it was made
is its origin_server_ts, and its ID (what admins page and delete by) its
stream position:

- `com.linkchat.report.event`: `{"room_id", "event_id", "reason"?, "score"?}`
- `com.linkchat.report.room`: `{"room_id", "reason"?}`
- `com.linkchat.report.user`: `{"user_id", "reason"?}` (the reported user)
- `com.linkchat.report.deleted`, sent by the admin who deleted it:
  `{"report_id": int, "kind": "event" | "room" | "user"}`

JSON Schemas: spec/events/com.linkchat.report.*.json (tests/test_reports.py
checks they agree with these models).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from homeserver.events import types
from homeserver.events.content.parsing import parsed

# As Synapse caps a user report's reason: longer is refused, not cut.
MAX_REASON_LENGTH = 1000
# The spec's scale: -100 is most offensive, 0 inoffensive.
MIN_SCORE, MAX_SCORE = -100, 0
MAX_ID_LENGTH = 255

ReportKind = Literal["event", "room", "user"]
KIND_OF_TYPE: dict[str, ReportKind] = {
    types.REPORT_EVENT: "event",
    types.REPORT_ROOM: "room",
    types.REPORT_USER: "user",
}


class _Fact(BaseModel):
    # A logged event is forever: keys this version does not know are kept.
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)


class EventReportContent(_Fact):
    room_id: str = Field(max_length=MAX_ID_LENGTH)
    event_id: str = Field(max_length=MAX_ID_LENGTH)
    reason: str | None = Field(default=None, max_length=MAX_REASON_LENGTH)
    score: int | None = Field(default=None, ge=MIN_SCORE, le=MAX_SCORE)


class RoomReportContent(_Fact):
    room_id: str = Field(max_length=MAX_ID_LENGTH)
    reason: str | None = Field(default=None, max_length=MAX_REASON_LENGTH)


class UserReportContent(_Fact):
    user_id: str = Field(max_length=MAX_ID_LENGTH)
    reason: str | None = Field(default=None, max_length=MAX_REASON_LENGTH)


class ReportDeletedContent(_Fact):
    report_id: int = Field(ge=1)
    kind: ReportKind


MODELS: dict[str, type[_Fact]] = {
    types.REPORT_EVENT: EventReportContent,
    types.REPORT_ROOM: RoomReportContent,
    types.REPORT_USER: UserReportContent,
    types.REPORT_DELETED: ReportDeletedContent,
}


def parse_report_fact(event_type: str, content: Mapping[str, Any]) -> _Fact:
    """The model of a report fact's content; M_INVALID_PARAM naming the field if it fits
    not (a KeyError for a type that is no report fact)."""
    return parsed(MODELS[event_type], content)
