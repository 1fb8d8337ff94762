"""The `homeserver` command as an operator runs it: check-config and migrate."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
import yaml

from tests.conftest import AppFactory
from tests.processes import Outcome, run_homeserver

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "config.sample.yaml"


async def homeserver(*args: str) -> Outcome:
    return await run_homeserver(*args, timeout_s=60)


def _write_config(path: Path, config: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


async def test_check_config_accepts_the_sample(tmp_path: Path) -> None:
    outcome = await homeserver("check-config", "--config", str(SAMPLE))
    assert outcome.code == 0, outcome
    assert "ok" in outcome.stdout


async def test_check_config_lists_every_problem(tmp_path: Path) -> None:
    path = _write_config(
        tmp_path / "config.yaml", {"listen": {"port": 70000}, "registraton": {"enabled": False}}
    )
    outcome = await homeserver("check-config", "--config", str(path))
    assert outcome.code == 1, outcome
    assert "listen.port" in outcome.stderr
    assert "65535" in outcome.stderr
    assert "registraton" in outcome.stderr


async def test_check_config_reports_a_missing_file(tmp_path: Path) -> None:
    outcome = await homeserver("check-config", "--config", str(tmp_path / "absent.yaml"))
    assert outcome.code == 1
    assert "absent.yaml" in outcome.stderr


async def test_other_commands_refuse_a_bad_config(tmp_path: Path) -> None:
    path = _write_config(tmp_path / "config.yaml", {"listen": {"port": 0}})
    outcome = await homeserver("migrate", "--config", str(path))
    assert outcome.code == 1
    assert "listen.port" in outcome.stderr


def _migrate_config(tmp_path: Path, dsn: str) -> Path:
    return _write_config(
        tmp_path / "config.yaml",
        {
            "database": {"dsn": dsn},
            "data_dir": str(tmp_path / "data"),
            "logging": {"format": "text"},
        },
    )


async def test_migrate_applies_every_migration_once(tmp_path: Path, fresh_dsn: str) -> None:
    config = _migrate_config(tmp_path, fresh_dsn)
    first = await homeserver("migrate", "--config", str(config))
    assert first.code == 0, first
    expected = sorted(path.stem for path in (REPO / "migrations").glob("*.sql"))
    assert expected
    for name in expected:
        assert name in first.stdout

    again = await homeserver("migrate", "--config", str(config))
    assert again.code == 0, again
    assert "up to date" in again.stdout
    for name in expected:
        assert name not in again.stdout


async def test_event_log_refuses_update_delete_and_truncate(
    tmp_path: Path, fresh_dsn: str, start_app: AppFactory
) -> None:
    migrated = await homeserver("migrate", "--config", str(_migrate_config(tmp_path, fresh_dsn)))
    assert migrated.code == 0, migrated
    hs = await start_app(dsn=fresh_dsn)
    alice = await hs.register()
    room = await hs.create_room(alice)
    event_id = await hs.send(alice, room, {"msgtype": "m.text", "body": "the original"})

    conn = await asyncpg.connect(fresh_dsn)
    try:
        before = await conn.fetchval("SELECT count(*) FROM events")
        assert before > 0
        for statement in [
            "UPDATE events SET json = '{}'",
            "DELETE FROM events",
            "TRUNCATE events",
        ]:
            with pytest.raises(asyncpg.PostgresError, match="append-only"):
                await conn.execute(statement)
        assert await conn.fetchval("SELECT count(*) FROM events") == before
    finally:
        await conn.close()
    event = await hs.ok("GET", f"rooms/{room}/event/{event_id}", user=alice)
    assert event["content"]["body"] == "the original"
