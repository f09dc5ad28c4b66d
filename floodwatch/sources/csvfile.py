"""Readings from CSV files (DESIGN.md format), for replay and the drop folder.

Columns: `time,station,variable,value` and optional `kind` (observed or
forecast) and `issued`. `time` and `issued` are ISO 8601 with an offset and are
coerced to UTC here. Bad rows are reported by line number; good rows still go
through.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from floodwatch.errors import InputError
from floodwatch.readings import Kind, Reading, Variable

REQUIRED = ("time", "station", "variable", "value")
OPTIONAL = ("kind", "issued")


@dataclass
class CsvResult:
    """The good readings of a file and one line per rejected row."""

    readings: list[Reading] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    rows: int = 0

    @property
    def rejected(self) -> int:
        """How many rows were rejected."""
        return len(self.problems)


def parse_time(text: str, column: str) -> datetime:
    """An ISO 8601 time with an offset, as aware UTC; ValueError otherwise."""
    text = text.strip()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"`{column}` {text!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise ValueError(f"`{column}` {text!r} has no UTC offset (write e.g. +07:00 or Z)")
    return when.astimezone(UTC)


def _parse_row(row: dict[str, str | None]) -> Reading:
    """One CSV row as a reading; ValueError with the reason otherwise."""
    for column in REQUIRED:
        if not (row.get(column) or "").strip():
            raise ValueError(f"missing `{column}`")
    when = parse_time(row["time"], "time")
    try:
        variable = Variable(row["variable"].strip())
    except ValueError:
        raise ValueError(
            f"unknown variable {row['variable']!r} (water_level or rainfall)"
        ) from None
    raw = row["value"].strip()
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"`value` {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"`value` {raw!r} is not a finite number")
    if variable is Variable.RAINFALL and value < 0:
        raise ValueError(f"negative rainfall {value}")
    kind_text = (row.get("kind") or "").strip() or Kind.OBSERVED
    try:
        kind = Kind(kind_text)
    except ValueError:
        raise ValueError(f"unknown kind {kind_text!r} (observed or forecast)") from None
    issued_text = (row.get("issued") or "").strip()
    issued = parse_time(issued_text, "issued") if issued_text else None
    return Reading(row["station"].strip(), variable, when, value, kind, issued)


def read_csv(path: Path, known_stations: Iterable[str] | None = None) -> CsvResult:
    """Parse a readings CSV; raise InputError only when the file is unusable as a whole."""
    known = set(known_stations) if known_stations is not None else None
    result = CsvResult()
    seen: dict[tuple, int] = {}
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({exc.strerror})") from None
    with handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise InputError(
                f"{path}: line 1: missing column(s) {', '.join(missing)} "
                f"(expected {','.join(REQUIRED)}[,kind,issued])"
            )
        unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
        if unknown:
            raise InputError(f"{path}: line 1: unknown column(s) {', '.join(unknown)}")
        reader.fieldnames = header
        try:
            for row in reader:
                result.rows += 1
                line = reader.line_num
                try:
                    if None in row:
                        raise ValueError("more fields than columns")
                    reading = _parse_row(row)
                    if known is not None and reading.station not in known:
                        raise ValueError(f"unknown station {reading.station!r}")
                    key = (reading.station, reading.variable, reading.time, reading.kind,
                           reading.issued)  # fmt: skip
                    if key in seen:
                        raise ValueError(f"duplicate of line {seen[key]}")
                    seen[key] = line
                except ValueError as exc:
                    result.problems.append(f"{path}: line {line}: {exc}")
                    continue
                result.readings.append(reading)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: line {reader.line_num}: unreadable CSV ({exc})") from None
    return result
