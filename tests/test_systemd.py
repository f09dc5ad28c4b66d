"""The systemd units verify, and their sandboxing keeps the exposure score below 3.0."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

UNITS = ("floodwatch.service", "floodwatch-web.service")
needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


@pytest.fixture
def units(tmp_path):
    """The units with ExecStart pointing at a binary that exists here."""
    paths = []
    for name in UNITS:
        text = (ROOT / "systemd" / name).read_text(encoding="utf-8")
        assert "/opt/floodwatch/.venv/bin/floodwatch" in text
        path = tmp_path / name
        path.write_text(text.replace("/opt/floodwatch/.venv/bin/floodwatch", "/usr/bin/true"))
        paths.append(path)
    return paths


@needs_analyze
def test_units_verify(units):
    result = subprocess.run(
        ["systemd-analyze", "verify", *map(str, units)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


@needs_analyze
def test_exposure_below_three(units):
    for unit in units:
        result = subprocess.run(
            ["systemd-analyze", "security", "--offline=yes", str(unit)],
            capture_output=True, text=True,
        )  # fmt: skip
        [score] = re.findall(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
        assert float(score) < 3.0, result.stdout


def test_the_service_is_a_notify_service_with_a_watchdog():
    text = (ROOT / "systemd" / "floodwatch.service").read_text(encoding="utf-8")
    assert "Type=notify" in text and "WatchdogSec=" in text
    assert "LoadCredential=telegram-token:" in text


def test_the_web_listens_on_loopback_behind_a_login():
    """The shipped web unit never serves open reads to the network (issue 11)."""
    text = (ROOT / "systemd" / "floodwatch-web.service").read_text(encoding="utf-8")
    [command] = [line for line in text.splitlines() if line.startswith("ExecStart=")]
    assert "--host 127.0.0.1" in command and "--login-required" in command
    assert "0.0.0.0" not in command and "--allow-open-reads" not in command
    assert "--forwarded-allow-ips 127.0.0.1" in command
