"""`floodwatch run` as a real process: starts on the shipped config, prints, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.conftest import ROOT


def test_run_starts_prints_the_outlook_and_stops_on_sigterm(project, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.pop("FLOODWATCH_TELEGRAM_TOKEN", None)
    out_path = tmp_path / "run.out"
    with out_path.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "floodwatch", "--config", str(project), "run"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
        try:
            deadline = time.monotonic() + 60
            while "Running;" not in out_path.read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, out_path.read_text()
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    output = out_path.read_text()
    assert "Next high waters" in output
    assert "TP Cà Mau" in output
    assert "Roads flooded or expected to flood" in output
    assert "Traceback" not in output
