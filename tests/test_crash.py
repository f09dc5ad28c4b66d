"""SIGKILL at random points of a replayed spring tide: the log ends as if nothing happened."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from sqlalchemy import create_engine, select

from floodwatch.config import load_settings
from floodwatch.db.models import AlertRow, EventChangeRow, EventRow
from floodwatch.db.store import Store
from tests.conftest import DATA, ROOT, on_database, on_test_roads

REPLAY = DATA / "replay" / "spring_tide_dec2024.csv"
KILLS = 30


def designed(config):
    """The config on the designed test roads and the given database."""
    return on_test_roads(config)


def replay_process(config):
    """Start `floodwatch replay -q` as its own process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "floodwatch", "--config", str(config), "replay", "-q", str(REPLAY)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip


def log_of(config) -> tuple[list, list, list]:
    """Events, changes and alerts, without wall-clock columns."""
    store = Store(load_settings(config).storage.database_url)
    with store.engine.connect() as conn:
        events = [
            (r.segment_id, r.kind, r.status, r.opened_at, r.closed_at, round(r.peak_depth_m, 4),
             r.peak_at, r.max_level, r.cause)
            for r in conn.execute(select(EventRow).order_by(EventRow.id))
        ]  # fmt: skip
        changes = [
            (r.event_id, r.at, r.change, r.status, r.level, r.note)
            for r in conn.execute(select(EventChangeRow).order_by(EventChangeRow.id))
        ]
        alerts = [
            (r.created_at, r.unit, r.kinds, r.body)
            for r in conn.execute(select(AlertRow).order_by(AlertRow.id))
        ]
    store.close()
    return events, changes, alerts


def cycles_done(engine) -> int:
    """How many cycles the database holds (0 before the schema exists)."""
    from sqlalchemy import func
    from sqlalchemy.exc import SQLAlchemyError

    from floodwatch.db.models import CycleRow

    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(CycleRow)).scalar_one()
    except SQLAlchemyError:
        return 0


def test_sigkill_thirty_times_then_finish_equals_one_clean_run(project, tmp_path):
    config = designed(project)
    reference = config.with_name("reference.toml")  # beside it: relative paths still work
    url = load_settings(config).storage.database_url
    ref_url = f"sqlite:///{tmp_path / 'reference.db'}"
    on_database(config, ref_url, copy=reference)
    assert replay_process(reference).wait(timeout=120) == 0

    rng = random.Random(20241216)
    killed = 0
    watcher = create_engine(url)
    while killed < KILLS:
        before = cycles_done(watcher)
        proc = replay_process(config)
        # Kill only once this run has committed a cycle of its own, then at most a few
        # milliseconds later: inside the work (ingest, cycle, commit), never in start-up.
        deadline = time.monotonic() + 120
        while proc.poll() is None and cycles_done(watcher) <= before:
            assert time.monotonic() < deadline, "the replay made no progress in 2 minutes"
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.008))
        if proc.poll() is not None:
            assert proc.returncode == 0, proc.stderr.read().decode()
            break  # the whole replay is in; the kills so far must not have changed it
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        killed += 1
    watcher.dispose()
    assert killed == KILLS, f"the replay finished after only {killed} kills"
    final = replay_process(config)
    assert final.wait(timeout=120) == 0, final.stderr.read().decode()

    events, changes, alerts = log_of(config)
    ref_events, ref_changes, ref_alerts = log_of(reference)
    assert events == ref_events
    assert [c[1:] for c in changes] == [c[1:] for c in ref_changes]
    assert alerts == ref_alerts  # none lost, none doubled
