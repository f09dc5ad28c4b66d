"""`floodwatch db`: upgrade, online backup, retention that never touches events."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from click.testing import CliRunner

from floodwatch.cli import main
from floodwatch.config import load_settings
from floodwatch.db.store import Store
from floodwatch.db.upkeep import apply_retention
from tests.conftest import DATA, on_test_roads


def run(config, *args):
    """Invoke the CLI."""
    return CliRunner().invoke(main, ["--config", str(config), *args])


def replayed(project):
    """The shipped config on the designed test roads, after the December replay."""
    on_test_roads(project)
    assert (
        run(project, "replay", "-q", str(DATA / "replay" / "spring_tide_dec2024.csv")).exit_code
        == 0
    )
    return project


def test_upgrade_reports_the_schema_is_current(project):
    result = run(project, "db", "upgrade")
    assert result.exit_code == 0 and "schema up to date" in result.output


def test_backup_copies_a_consistent_database(project, tmp_path):
    config = replayed(project)
    url = load_settings(config).storage.database_url
    target = tmp_path / "backups" / "fw.db"
    result = run(config, "db", "backup", str(target))
    if not url.startswith("sqlite"):
        assert result.exit_code == 1 and "pg_dump" in result.output
        return
    assert result.exit_code == 0, result.output
    store = Store(url)
    events = store.stats.counts()["event"]
    store.close()
    with sqlite3.connect(target) as copy:
        assert copy.execute("SELECT count(*) FROM event").fetchone()[0] == events > 0
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    again = run(config, "db", "backup", str(target))
    assert again.exit_code == 1 and "already exists" in again.output


def test_retention_removes_old_readings_and_keeps_every_event(project):
    config = replayed(project)
    store = Store(load_settings(config).storage.database_url)
    try:
        before = store.stats.counts()
        done = apply_retention(store, datetime(2024, 12, 17, tzinfo=UTC), keep_days=1)
        after = store.stats.counts()
        assert 0 < done.readings < before["reading"]
        assert after["reading"] == before["reading"] - done.readings
        assert after["event"] == before["event"] and after["event_change"] == before["event_change"]
    finally:
        store.close()
