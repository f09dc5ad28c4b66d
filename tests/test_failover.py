"""Two instances on one database: one active, the standby takes over after SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest

from floodwatch.config import load_settings
from floodwatch.db.outbox import NewAlert
from floodwatch.db.store import Store
from tests.conftest import ROOT
from tests.fake_telegram import FakeTelegram

TOKEN = "42:FAILOVER"
OPERATORS = -1009


@pytest.fixture
def tg():
    with FakeTelegram() as server:
        yield server


@pytest.fixture
def config(project, tg):
    text = project.read_text(encoding="utf-8")
    text += f'\n[telegram]\nbase_url = "{tg.url}/bot"\noperators_chats = [{OPERATORS}]\n'
    text += "\n[service]\nstandby_check_seconds = 1\n"
    project.write_text(text, encoding="utf-8")
    return project


def start(config, log):
    """Start `floodwatch run` as its own process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FLOODWATCH_TELEGRAM_TOKEN": TOKEN,
           "PTB_TIMEDELTA": "true"}  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "floodwatch", "--config", str(config), "run"],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=log.parent,
    )  # fmt: skip


def wait_for(predicate, what: str, timeout_s: float = 30.0) -> None:
    """Poll until `predicate()` holds."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def queue(config, texts: list[str]) -> None:
    """Commit alerts for the operators' chat, as a cycle would."""
    store = Store(load_settings(config).storage.database_url)
    now = datetime.now(UTC)
    store.outbox.add([NewAlert(now, "operators", ["test"], t, [(OPERATORS, None)]) for t in texts])
    store.close()


def sent_count(config) -> int:
    """Deliveries recorded as sent."""
    from sqlalchemy import func, select

    from floodwatch.db.models import DeliveryRow

    store = Store(load_settings(config).storage.database_url)
    try:
        with store.engine.connect() as conn:
            query = select(func.count()).where(DeliveryRow.status == "sent")
            return conn.execute(query.select_from(DeliveryRow)).scalar_one()
    finally:
        store.close()


def ours(tg) -> list[str]:
    """The test's own alerts among what the operators received (cycles add real ones)."""
    return [t for t in tg.texts(OPERATORS) if t and t.startswith(("trước ", "sau "))]


def test_standby_takes_over_after_sigkill_and_nothing_is_lost_or_doubled(config, tg, tmp_path):
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    a = start(config, log_a)
    b = None
    try:
        wait_for(lambda: "Running;" in log_a.read_text(), "A to be active and running")
        b = start(config, log_b)
        wait_for(lambda: "Standby" in log_b.read_text(), "B to wait as standby")
        queue(config, [f"trước {i}" for i in range(5)])
        # Kill only once A has recorded the deliveries: a kill between Telegram's
        # reply and that commit is the documented duplicate window (tested elsewhere).
        wait_for(lambda: sent_count(config) >= 5, "A to deliver and record the first alerts")
        a.send_signal(signal.SIGKILL)
        a.wait(timeout=10)
        queue(config, [f"sau {i}" for i in range(5)])
        wait_for(lambda: "Active instance." in log_b.read_text(), "B to take over", 60)
        wait_for(lambda: len(ours(tg)) >= 10, "B to deliver the rest", 60)
        # A last alert, queued after all the others: a chat's alerts go out in the
        # order they were committed, so anything pending twice goes out before it.
        queue(config, ["sau cuối"])
        wait_for(lambda: "sau cuối" in ours(tg), "B to deliver the last alert", 60)
        texts = ours(tg)
        expected = [f"trước {i}" for i in range(5)] + [f"sau {i}" for i in range(5)]
        assert sorted(texts) == sorted([*expected, "sau cuối"]), texts
        assert texts[5:] == [*(f"sau {i}" for i in range(5)), "sau cuối"]  # order per chat kept
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
    assert "Traceback" not in log_b.read_text()


def test_failover_into_a_group_near_its_limit_keeps_telegrams_limits(config, tg, tmp_path, capsys):
    """A sends 19 messages to a group in ~20 s and is killed; B takes over with 4 more. B
    counts A's recorded sends, so it waits for the group's minute instead of bursting."""
    tg.enforce_limits = True
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    a = start(config, log_a)
    b = None
    try:
        wait_for(lambda: "Running;" in log_a.read_text(), "A to be active and running")
        b = start(config, log_b)
        wait_for(lambda: "Standby" in log_b.read_text(), "B to wait as standby")
        queue(config, [f"trước {i}" for i in range(19)])
        wait_for(lambda: sent_count(config) >= 19, "A to deliver 19 alerts", 60)
        a.send_signal(signal.SIGKILL)
        a.wait(timeout=10)
        queue(config, [f"sau {i}" for i in range(4)])
        wait_for(lambda: "Active instance." in log_b.read_text(), "B to take over", 60)
        wait_for(lambda: len(ours(tg)) >= 23, "B to deliver the rest", 90)
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
    assert tg.limit_violations == []
    texts = ours(tg)
    assert texts == [f"trước {i}" for i in range(19)] + [f"sau {i}" for i in range(4)]
    times = [c.at for c in tg.messages(OPERATORS)]
    # Never more than 20 in any minute, never two within a second.
    assert all(b - a >= 1.0 for a, b in zip(times, times[1:], strict=False))
    assert all(times[i + 20] - times[i] > 60 for i in range(len(times) - 20))
    with capsys.disabled():
        print(
            f"\n  A's 19 sends took {times[18] - times[0]:.1f} s; B's first came "
            f"{times[19] - times[0]:.1f} s after A's first, 0 limit violations"
        )
    assert "Traceback" not in log_b.read_text()
