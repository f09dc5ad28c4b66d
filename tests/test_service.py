"""`floodwatch run` as a real process: starts on the shipped config, prints, stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import ROOT, floodwatch_run, wait_until


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_run_starts_prints_the_outlook_and_stops_on_sigterm(project, tmp_path, stop):
    out_path = tmp_path / "run.out"
    with floodwatch_run(project, out_path, stop=stop) as proc:
        wait_until(lambda: "Running;" in out_path.read_text(), proc, out_path)
    output = out_path.read_text()
    assert "Next high waters" in output
    assert "TP Cà Mau" in output
    assert "Roads flooded or expected to flood" in output
    assert "Traceback" not in output


def test_sigterm_during_the_first_poll_finishes_it_then_stops(
    project, tmp_path, fake_server, closed_port
):
    """SIGTERM is a flag, not an exception thrown into whatever runs: the poll under way
    finishes and is recorded, nothing is scheduled after it, the exit is clean."""
    from tests.fakeserver import Reply

    arrived = []

    def slow_refusal(request):
        arrived.append(request.path)
        body = '{"error": true, "reason": "Cannot initialize WeatherVariable from invalid String"}'
        return Reply.json(body, status=400, delay_s=1.5)

    fake_server.routes["/v1/forecast"] = slow_refusal
    fake_server.routes["/v1/marine"] = slow_refusal
    text = project.read_text(encoding="utf-8")
    project.write_text(text.replace(f"http://127.0.0.1:{closed_port}", fake_server.url))
    out_path = tmp_path / "run.out"
    with floodwatch_run(project, out_path) as proc:
        wait_until(lambda: bool(arrived), proc, out_path, every=0.05)
    output = out_path.read_text()
    assert "Running;" not in output and "Traceback" not in output, output
    listing = subprocess.run(
        [sys.executable, "-m", "floodwatch", "--config", str(project), "sources",
         "--format", "json"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path, check=True,
    )  # fmt: skip
    polled = {s["name"]: s["last_poll"] for s in json.loads(listing.stdout)}
    # The poll the signal arrived in was finished and recorded with its failure.
    source = {"/v1/forecast": "rain", "/v1/marine": "sea_level"}[arrived[0]]
    assert polled[source] is not None and polled[source]["ok"] is False, polled
