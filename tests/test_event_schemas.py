"""Every event of our own types in the log matches its JSON Schema in spec/events/."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import jsonschema

from tests.matrix import MatrixClient

SPEC_EVENTS = Path(__file__).resolve().parent.parent / "spec" / "events"


def _schema(event_type: str) -> dict[str, object]:
    schema: dict[str, object] = json.loads((SPEC_EVENTS / f"{event_type}.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


async def _logged(dsn: str, event_type: str) -> list[dict[str, object]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT json FROM events WHERE type = $1", event_type)
    finally:
        await conn.close()
    return [json.loads(row["json"])["content"] for row in rows]


async def test_upload_and_directory_events_match_their_schemas(
    hs: MatrixClient, run_dsn: str
) -> None:
    alice = await hs.register()
    async with hs.http.post(
        "/_matrix/media/v3/upload",
        data=b"\x89PNG not really",
        params={"filename": "cat.png"},
        headers={"Authorization": f"Bearer {alice.token}", "Content-Type": "image/png"},
    ) as response:
        assert response.status == 200
    room = await hs.create_room(alice, preset="public_chat", visibility="public")
    await hs.ok("PUT", f"directory/list/room/{room}", {"visibility": "private"}, user=alice)

    for event_type, expected in (("com.linkchat.media", 1), ("com.linkchat.room.directory", 2)):
        contents = await _logged(run_dsn, event_type)
        assert len(contents) >= expected, event_type
        for content in contents:
            jsonschema.validate(content, _schema(event_type))


def test_every_event_schema_is_a_valid_json_schema() -> None:
    schemas = sorted(SPEC_EVENTS.glob("*.json"))
    assert len(schemas) >= 10
    for path in schemas:
        _schema(path.stem)
