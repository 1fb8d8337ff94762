"""The admins' side of reports: list, read and delete them, in the Synapse Admin API's
shapes (`/_synapse/admin/v1/event_reports`, `room_reports`, `user_reports`).

Reading changes nothing and is not recorded; a deletion is an admin action: a
`com.linkchat.report.deleted` fact appended with its audit record
(admin/audit.py), which removes the report from the projection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.admin.audit import AuditTrail
from homeserver.errors import not_found
from homeserver.events import types
from homeserver.events.content.reports import ReportKind
from homeserver.events.model import JsonDict
from homeserver.store import events as event_store
from homeserver.store import reports as report_store
from homeserver.store.reports import ReportFilter
from homeserver.store.room_directory import RoomSummary, room_summaries

__all__ = ["ReportFilter", "ReportQueue"]

# What each kind shows of the reported room (Synapse's fields).
_ROOM_LABELS: dict[ReportKind, tuple[str, ...]] = {
    "event": ("name", "canonical_alias"),
    "room": ("name", "canonical_alias", "topic"),
    "user": (),
}
_NOT_FOUND = {"event": "Event report not found", "room": "Room report not found"}


def _label(summary: RoomSummary | None, field: str) -> str | None:
    return getattr(summary, field) if summary is not None else None


@dataclass(eq=False)
class ReportQueue:
    pool: asyncpg.Pool
    trail: AuditTrail

    async def page(
        self,
        kind: ReportKind,
        found: ReportFilter,
        *,
        offset: int,
        limit: int,
        newest_first: bool,
    ) -> tuple[list[JsonDict], int]:
        """A page of the reports `found` matches, and how many match in all."""
        async with self.pool.acquire() as conn:
            page = await report_store.reports(
                conn, kind, found, offset=offset, limit=limit, newest_first=newest_first
            )
            shown = await self._shown(conn, kind, page.reports)
        return shown, page.total

    async def report(self, kind: ReportKind, report_id: int) -> JsonDict:
        """One report (404 M_NOT_FOUND if there is none); an event report with the
        reported event as the log holds it (`event_json`)."""
        async with self.pool.acquire() as conn:
            row = await report_store.report(conn, kind, report_id)
            if row is None:
                raise not_found(_NOT_FOUND.get(kind, "User report not found"))
            [shown] = await self._shown(conn, kind, [row])
            if kind == "event":
                event = await event_store.event_by_id(conn, row["event_id"])
                shown["event_json"] = event.pdu if event is not None else None
        return shown

    async def delete(
        self, admin: str, kind: ReportKind, report_id: int, reason: str | None
    ) -> None:
        """Delete a report (404 M_NOT_FOUND if there is none), recorded as `report.delete`."""
        async with self.pool.acquire() as conn:
            if await report_store.report(conn, kind, report_id) is None:
                raise not_found(_NOT_FOUND.get(kind, "User report not found"))
        deleted = {"report_id": report_id, "kind": kind}
        await self.trail.record(
            admin,
            "report.delete",
            target=str(report_id),
            reason=reason,
            details={"kind": kind},
            facts=[self.trail.fact(admin, types.REPORT_DELETED, deleted)],
        )

    @staticmethod
    async def _shown(
        conn: asyncpg.Connection, kind: ReportKind, rows: list[dict[str, Any]]
    ) -> list[JsonDict]:
        labels = _ROOM_LABELS[kind]
        summaries = {}
        if labels:
            summaries = await room_summaries(conn, sorted({row["room_id"] for row in rows}))
        shown = []
        for row in rows:
            report: JsonDict = dict(row)
            for field in labels:
                report[field] = _label(summaries.get(row["room_id"]), field)
            shown.append(report)
        return shown
