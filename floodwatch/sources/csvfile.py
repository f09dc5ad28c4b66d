"""Readings from CSV files (DESIGN.md format), for replay and the drop folder.

Columns: `time,station,variable,value` and optional `kind` (observed or
forecast) and `issued`. `time` and `issued` are ISO 8601 with an offset and are
coerced to UTC here. Bad rows are reported by line number; good rows still go
through. A file that is not UTF-8 text (binary, gzip, UTF-16, Excel's
Windows-1258 "CSV") or whose header cannot be read is refused as a whole, with
one line saying why, before any row is used.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from floodwatch.core.readings import Kind, Reading, Variable
from floodwatch.errors import InputError

REQUIRED = ("time", "station", "variable", "value")
OPTIONAL = ("kind", "issued")
# A plain decimal number (ASCII digits, optional exponent), or nan/inf for a clear refusal.
_NUMBER = re.compile(
    r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?i:nan|inf|infinity)"
)
# A header longer than this is not a header (the csv module's field limit is 128 KiB).
MAX_HEADER_CHARS = 1000
# Magic numbers of files people drop by mistake, named in the refusal.
_MAGIC = {
    b"\x1f\x8b": "a gzip file",
    b"PK\x03\x04": "a ZIP file (an .xlsx workbook?)",
    b"\xff\xfe": "UTF-16 text",
    b"\xfe\xff": "UTF-16 text",
    b"%PDF": "a PDF file",
}


@dataclass
class CsvResult:
    """The good readings of a file and one line per rejected row."""

    readings: list[Reading] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    rows: int = 0
    lines: list[int] = field(default_factory=list)  # the line of each reading

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
        raise ValueError(f"`{column}` {_short(text)!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise ValueError(f"`{column}` {text!r} has no UTC offset (write e.g. +07:00 or Z)")
    try:
        return when.astimezone(UTC)
    except OverflowError:  # year 0001 east of UTC, 9999 west of it
        raise ValueError(f"`{column}` {text!r} is out of range") from None


def _short(text: str, limit: int = 40) -> str:
    """Text cut to `limit` characters for a message (a 5,000-digit value stays readable)."""
    return text if len(text) <= limit else text[:limit] + "…"


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
    # float() also takes "1_0" (10) and other scripts' digits ("١" = 1): not ours.
    if not _NUMBER.fullmatch(raw):
        raise ValueError(f"`value` {_short(raw)!r} is not a number")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"`value` {_short(raw)!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"`value` {_short(raw)!r} is not a finite number")
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


def decode_text(path: Path, data: bytes) -> str:
    """The file's text as UTF-8 (a BOM allowed); InputError naming what it is otherwise.

    Excel on Vietnamese Windows saves "CSV" in Windows-1258 by default, which
    would otherwise surface as a cryptic codec error in the middle of a row.
    """
    for magic, what in _MAGIC.items():
        if data.startswith(magic):
            raise InputError(f"{path}: not a CSV text file: it is {what}; save it as CSV UTF-8")
    if b"\x00" in data[:4096]:
        raise InputError(f"{path}: not a CSV text file: it holds NUL bytes (binary or UTF-16)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
            f"{exc.start}; Windows-1258 from Excel?); save it as CSV UTF-8"
        ) from None


def read_csv(path: Path, known_stations: Iterable[str] | None = None) -> CsvResult:
    """Parse a readings CSV; raise InputError only when the file is unusable as a whole."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({exc.strerror})") from None
    return parse_csv(path, decode_text(path, data), known_stations)


def parse_csv(path: Path, text: str, known_stations: Iterable[str] | None = None) -> CsvResult:
    """Parse the text of a readings CSV named `path` (see read_csv)."""
    known = set(known_stations) if known_stations is not None else None
    result = CsvResult()
    seen: dict[tuple, int] = {}
    first_line = text.split("\n", 1)[0]
    if len(first_line) > MAX_HEADER_CHARS:
        raise InputError(
            f"{path}: line 1: header is {len(first_line):,} characters long; "
            f"expected {','.join(REQUIRED)}[,kind,issued]"
        )
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in reader.fieldnames or []]
    except csv.Error as exc:
        raise InputError(f"{path}: line 1: unreadable CSV header ({exc})") from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(
            f"{path}: line 1: missing column(s) {', '.join(missing)} "
            f"(expected {','.join(REQUIRED)}[,kind,issued])"
        )
    unknown = [_short(c) for c in header if c not in REQUIRED + OPTIONAL]
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
                    raise ValueError(f"unknown station {_short(reading.station)!r}")
                key = (reading.station, reading.variable, reading.time, reading.kind,
                       reading.issued)  # fmt: skip
                if key in seen:
                    raise ValueError(f"duplicate of line {seen[key]}")
                seen[key] = line
            except ValueError as exc:
                result.problems.append(f"{path}: line {line}: {exc}")
                continue
            result.readings.append(reading)
            result.lines.append(line)
    except csv.Error as exc:
        raise InputError(f"{path}: line {reader.line_num}: unreadable CSV ({exc})") from None
    return result
