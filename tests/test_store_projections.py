"""Projection changes as store/ applies them: one per row, as if applied in order."""

from __future__ import annotations

import asyncpg

from homeserver.projections.changes import Change, Delete, InsertIfAbsent, Table, Upsert
from homeserver.store.projections import apply_changes, compact

NOTES = Table("notes", ("note_id",), ("note_id", "body"))


def _note(note_id: str, body: str) -> dict[str, str]:
    return {"note_id": note_id, "body": body}


def test_an_insert_if_absent_after_a_delete_of_its_row_inserts_it() -> None:
    changes = compact([Delete(NOTES, {"note_id": "a"}), InsertIfAbsent(NOTES, _note("a", "again"))])
    assert changes == [Upsert(NOTES, _note("a", "again"))]


def test_an_insert_if_absent_after_a_write_of_its_row_does_nothing() -> None:
    for earlier in (Upsert(NOTES, _note("a", "first")), InsertIfAbsent(NOTES, _note("a", "first"))):
        assert compact([earlier, InsertIfAbsent(NOTES, _note("a", "second"))]) == [earlier]


def test_the_last_upsert_or_delete_of_a_row_wins() -> None:
    changes = compact(
        [
            Upsert(NOTES, _note("a", "first")),
            Upsert(NOTES, _note("b", "kept")),
            Delete(NOTES, {"note_id": "a"}),
            Upsert(NOTES, _note("a", "last")),
        ]
    )
    assert changes == [Upsert(NOTES, _note("b", "kept")), Upsert(NOTES, _note("a", "last"))]


async def test_a_row_deleted_and_inserted_again_in_one_batch_is_there(fresh_dsn: str) -> None:
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await conn.execute("CREATE TEMP TABLE notes (note_id text PRIMARY KEY, body text)")
        await apply_changes(conn, [Upsert(NOTES, _note("a", "old"))], schema="pg_temp")
        batch: list[Change] = [
            Delete(NOTES, {"note_id": "a"}),
            InsertIfAbsent(NOTES, _note("a", "new")),
            InsertIfAbsent(NOTES, _note("b", "other")),
            InsertIfAbsent(NOTES, _note("b", "ignored")),
        ]
        await apply_changes(conn, batch, schema="pg_temp")
        rows = await conn.fetch("SELECT note_id, body FROM pg_temp.notes ORDER BY note_id")
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [("a", "new"), ("b", "other")]
