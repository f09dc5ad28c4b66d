"""Shared pieces of the hostile-input suite: hostile bytes, a small config, a CLI runner.

Every hostile case must end in clear lines (or a 4xx), a known exit code and no
traceback; these helpers make that check one call.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner, Result

from floodwatch.cli import main
from tests.conftest import ROOT

SEGMENTS = ROOT / "geodata" / "segments.geojson"
STATIONS = ROOT / "geodata" / "stations.geojson"
UNITS = sorted(
    {f["properties"]["unit"] for f in json.loads(SEGMENTS.read_text("utf-8"))["features"]}
)
# A FLOODWATCH_* variable of the developer's shell must not reach a CLI run.
CLEAN_ENV = {"FLOODWATCH_DATABASE_URL": None, "FLOODWATCH_CONFIG": None}

# Deep enough to blow any recursive parser (Python's limit is about 1,000 frames).
DEEP = 100_000
HUGE_DIGITS = "9" * 5000  # past Python's 4,300-digit limit for int(str)
BIG_DIGITS = "9" * 4000  # parses as an int, but is no float

VALID_CSV = "time,station,variable,value\n2024-12-16T17:00:00+07:00,tp_ca_mau,water_level,1.0\n"

# Whole files that are not UTF-8 text (or not text at all), for any text format.
NOT_TEXT: dict[str, bytes] = {
    "binary": bytes(range(256)) * 4,
    "gzip": gzip.compress(VALID_CSV.encode("utf-8")),
    "utf16-bom": VALID_CSV.replace("1.0", "1,0 Cà Mau").encode("utf-16"),
    "utf16le-nobom": "tên,trạm\nCà Mau,1\n".encode("utf-16-le"),
    # Excel on Vietnamese Windows: an ASCII header, then Windows-1258 text.
    "cp1258": (VALID_CSV + "2024-12-16T18:00:00+07:00,Cà Mau Đông,mưa,1.0\n").encode("cp1258"),
    "png": b"\x89PNG\r\n\x1a\n" + bytes(200),
}


def config_text(
    database_url: str,
    *,
    segments: Path = SEGMENTS,
    stations: Path = STATIONS,
    top: str = "",
    storage: str = "",
    extra: str = "",
) -> str:
    """A complete config on the shipped (or given) geodata; `top` goes before any table."""
    units = "".join(f'[[units]]\nid = "{u}"\nname = "Đơn vị {u}"\n\n' for u in UNITS)
    return (
        f"{top}"
        f"[storage]\ndatabase_url = {json.dumps(database_url)}\n{storage}\n"
        f"[geodata]\nsegments = {json.dumps(str(segments))}\n"
        f"stations = {json.dumps(str(stations))}\n\n"
        f"{units}{extra}"
    )


def write_config(folder: Path, database_url: str | None = None, **kw) -> Path:
    """Write `floodwatch.toml` into `folder` (SQLite in the folder by default)."""
    folder.mkdir(parents=True, exist_ok=True)
    url = database_url or f"sqlite:///{folder / 'fw.db'}"
    path = folder / "floodwatch.toml"
    path.write_text(config_text(url, **kw), encoding="utf-8")
    return path


def cli(config: Path | None, *args: str, env: dict | None = None) -> Result:
    """Run `floodwatch [--config CONFIG] ARGS`; fail on any exception but SystemExit."""
    prefix = ["--config", str(config)] if config is not None else []
    result = CliRunner().invoke(main, [*prefix, *args], env={**CLEAN_ENV, **(env or {})})
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        where = traceback.extract_tb(exc.__traceback__)[-1]
        raise AssertionError(
            f"traceback: {type(exc).__name__}: {str(exc)[:200]} "
            f"(at {Path(where.filename).name}:{where.lineno})"
        )
    assert "Traceback" not in result.output, result.output[-2000:]
    return result


def error_lines(result: Result) -> list[str]:
    """The `error: …` lines a command printed on stderr."""
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def db_path(config: Path) -> Path:
    """The SQLite file of a config written by write_config."""
    return config.parent / "fw.db"


def count_rows(database: Path, table: str) -> int:
    """Rows in a table of a SQLite file (0 when the file or table does not exist)."""
    if not database.exists():
        return 0
    with sqlite3.connect(database) as conn:
        try:
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def last_cycle(database: Path) -> datetime | None:
    """The newest cycle time stored in a SQLite file, as aware UTC."""
    if not database.exists():
        return None
    with sqlite3.connect(database) as conn:
        try:
            (value,) = conn.execute("SELECT max(at) FROM cycle").fetchone()
        except sqlite3.OperationalError:
            return None
    if value is None:
        return None
    when = datetime.fromisoformat(str(value))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def recent_hours(n: int) -> list[datetime]:
    """The last `n` whole hours before now (UTC), oldest first."""
    top = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return [top - timedelta(hours=h) for h in range(n, 0, -1)]


def deep_json(depth: int = DEEP) -> str:
    """A JSON array nested `depth` deep."""
    return "[" * depth + "]" * depth
