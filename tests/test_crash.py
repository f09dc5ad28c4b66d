"""SIGKILL at random points of a replayed spring tide: the log ends as if nothing happened."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from sqlalchemy import select

from floodwatch.config import load_settings
from floodwatch.models import AlertRow, EventChangeRow, EventRow
from floodwatch.store import Store
from tests.conftest import DATA, ROOT

REPLAY = DATA / "replay" / "spring_tide_dec2024.csv"
KILLS = 30


def designed(config):
    """The config on the designed test roads and the given database."""
    text = config.read_text(encoding="utf-8").replace(
        'segments = "../geodata/segments.geojson"',
        f'segments = "{DATA / "replay" / "segments.geojson"}"',
    )
    config.write_text(text, encoding="utf-8")
    return config


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


def test_sigkill_thirty_times_then_finish_equals_one_clean_run(project, tmp_path):
    config = designed(project)
    reference = config.with_name("reference.toml")  # beside it: relative paths still work
    url = load_settings(config).storage.database_url
    ref_url = f"sqlite:///{tmp_path / 'reference.db'}"
    reference.write_text(
        config.read_text(encoding="utf-8").replace(f'database_url = "{url}"',
                                                   f'database_url = "{ref_url}"'),
        encoding="utf-8",
    )  # fmt: skip
    assert replay_process(reference).wait(timeout=120) == 0

    rng = random.Random(20241216)
    killed = 0
    while killed < KILLS:
        proc = replay_process(config)
        time.sleep(rng.uniform(0.8, 3.5))  # start-up is about a second; the replay a few more
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            killed += 1
        else:
            assert proc.returncode == 0, proc.stderr.read().decode()
            # Finished before the kill: start over on a fresh database would change
            # nothing, so count it and keep going until thirty kills have landed.
    final = replay_process(config)
    assert final.wait(timeout=120) == 0, final.stderr.read().decode()

    events, changes, alerts = log_of(config)
    ref_events, ref_changes, ref_alerts = log_of(reference)
    assert events == ref_events
    assert [c[1:] for c in changes] == [c[1:] for c in ref_changes]
    assert alerts == ref_alerts  # none lost, none doubled
