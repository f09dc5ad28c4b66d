"""Shared fixtures: an isolated environment and a fresh database per test.

Every database test runs on SQLite, and again on PostgreSQL when
FLOODWATCH_TEST_DATABASE_URL is set (each test gets its own schema there).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from subprocess import STDOUT, Popen

import pytest
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
PG_URL = os.environ.get("FLOODWATCH_TEST_DATABASE_URL")


SHIPPED_SEGMENTS = 'segments = "../geodata/segments.geojson"'
TEST_ROADS = DATA / "replay" / "segments.geojson"
# Tests never fetch map tiles from the internet (tests/test_map_browser.py serves its own).
WEB_TILES_OFF = '[web]\ntiles = "none"\n'


def edit_config(
    config: Path,
    replace: dict[str, str] | None = None,
    *,
    units: dict[str, str] | None = None,
    append: str = "",
) -> Path:
    """Edit a test's copy of the config; fail loudly if a text to replace is not there.

    `replace` swaps exact texts; `units` adds lines under a `[[units]]` entry by id;
    `append` adds TOML at the end. A config that changed under the tests stops them
    here, naming what was missing, instead of letting them run on the wrong config.
    """
    text = config.read_text(encoding="utf-8")
    edits = dict(replace or {})
    for unit, lines in (units or {}).items():
        edits[f'id = "{unit}"\n'] = f'id = "{unit}"\n{lines.rstrip()}\n'
    for old, new in edits.items():
        if text.count(old) != 1:
            raise AssertionError(
                f"{config}: expected {old!r} once, found it {text.count(old)} times"
            )
        text = text.replace(old, new)
    config.write_text(text + (f"\n{append}" if append else ""), encoding="utf-8")
    return config


def on_test_roads(config: Path) -> Path:
    """The config on the designed test roads (tests/data/replay) instead of the sample roads."""
    return edit_config(config, {SHIPPED_SEGMENTS: f'segments = "{TEST_ROADS}"'})


def on_database(config: Path, url: str, copy: Path | None = None) -> Path:
    """The config (or a copy of it at `copy`) on another database URL."""
    current = re.search(r'^database_url = "(.*)"$', config.read_text(encoding="utf-8"), re.M)
    if current is None:
        raise AssertionError(f"{config}: no database_url line")
    if copy is not None:
        shutil.copyfile(config, copy)
        config = copy
    return edit_config(config, {current.group(0): f'database_url = "{url}"'})


@contextmanager
def floodwatch_run(
    config: Path,
    log: Path,
    token: str | None = None,
    stop: int = signal.SIGTERM,
    verbose: bool = False,
) -> Iterator[Popen]:
    """`floodwatch run` as its own process writing to `log` (Telegram with `token`;
    `verbose`: with `-vv`, every debug line).

    Leaving the block sends `stop` (SIGTERM) and asserts a clean exit within 30 s;
    the process is killed if the test fails first.
    """
    env = {k: v for k, v in os.environ.items() if k != "FLOODWATCH_TELEGRAM_TOKEN"}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", PTB_TIMEDELTA="true")
    if token is not None:
        env["FLOODWATCH_TELEGRAM_TOKEN"] = token
    with log.open("w") as out:
        proc = Popen(
            [sys.executable, "-m", "floodwatch", "--config", str(config),
             *(["-vv"] if verbose else []), "run"],
            stdout=out, stderr=STDOUT, env=env, cwd=log.parent,
        )  # fmt: skip
        try:
            yield proc
            proc.send_signal(stop)
            assert proc.wait(timeout=30) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()


def wait_until(done, proc: Popen, log: Path, seconds: float = 60, every: float = 0.2) -> None:
    """Poll `done` until true; fail with the process log if it dies or time runs out."""
    deadline = time.monotonic() + seconds
    while not done():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(every)


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """A developer's own FLOODWATCH_* settings must not change a test."""
    for name in list(os.environ):
        if name.startswith("FLOODWATCH_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.chdir(tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"] if PG_URL else ["sqlite"])
def database_url(request, tmp_path):
    """A URL of an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def point_sources_at(config: Path, base_url: str) -> None:
    """Aim the shipped config's Open-Meteo sources at `base_url` (tests never go online)."""
    edit_config(
        config,
        {
            f'type = "{kind}"\n': f'type = "{kind}"\nbase_url = "{base_url}{path}"\n'
            for kind, path in (
                ("open_meteo_rain", "/v1/forecast"),
                ("open_meteo_sea_level", "/v1/marine"),
            )
        },
        append="[http]\nretries = 0\n",
    )


@pytest.fixture
def project(tmp_path, database_url, closed_port):
    """A copy of the shipped config, tide tables and geodata, on the test database.

    Its network sources point at a closed loopback port: the network is down; the web
    map has no basemap tiles (`[web] tiles = "none"`: WEB_TILES_OFF, to replace).
    """
    root = tmp_path / "project"
    shutil.copytree(ROOT / "config", root / "config")
    shutil.copytree(ROOT / "geodata", root / "geodata")
    config = root / "config" / "floodwatch.toml"
    edit_config(
        config, {'database_url = "sqlite:///var/floodwatch.db"': f'database_url = "{database_url}"'}
    )
    point_sources_at(config, f"http://127.0.0.1:{closed_port}")
    edit_config(config, append=WEB_TILES_OFF)
    return config


@pytest.fixture
def fake_server():
    """A real HTTP server on 127.0.0.1 with routes the test sets."""
    from tests.fakeserver import FakeServer

    with FakeServer() as server:
        yield server


@pytest.fixture
def closed_port():
    """A loopback port nothing listens on (connection refused)."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port
