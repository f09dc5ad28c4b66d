"""Read published constituent tables (TICON-4, NOAA CO-OPS harcon.json, neaps JSON) (pure).

Each reader returns a `PublishedTable`: canonical constituent names (core.harmonics),
amplitudes in metres, Greenwich phase lags in degrees, the datums the source gives
(metres above its chart datum) and its source, licence and attribution for the header.
Bad input raises InputError naming the file and the field.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from floodwatch.core.harmonics import canonical, known
from floodwatch.core.text import Credit
from floodwatch.core.tides import NATIONAL_DATUM, REFERENCE_COMMENT
from floodwatch.errors import InputError

FORMATS = ("ticon", "noaa", "neaps")
FEET = 0.3048
TICON_COLUMNS = (
    "lat", "lon", "const", "ampl", "phase", "ampl_std", "phase_std", "pctMissing",
    "numObs", "lenTempGap", "date_start", "date_end", "record_source",
)  # fmt: skip
TICON_SOURCE = (
    "TICON-4: Hart-Davis, M., Dettmering, D., Seitz, F. (2025), TICON-4: TIdal CONstants "
    "based on GESLA-4 sea-level records, SEANOE, https://doi.org/10.17882/109129"
)
# NOAA datum entries that are ranges or intervals (great range, mean range, diurnal
# high/low water inequality, high/low water intervals), not levels.
NOT_LEVELS = frozenset({"GT", "MN", "DHQ", "DLQ", "HWI", "LWI"})
CC_BY = "CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/)"


@dataclass
class PublishedTable:
    """A station's published constituents with where they came from."""

    station: str
    name: str
    source: str
    licence: str
    attribution: str
    chart_datum: str = ""
    datums: dict[str, float] = field(default_factory=dict)  # metres above chart_datum
    constituents: list[tuple[str, float, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _number(value: object, path: Path, where: str) -> float:
    """A finite float, or InputError naming the file and the field."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{path}: {where}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise InputError(f"{path}: {where}: {value!r} is not a finite number")
    return number


def _add(table: PublishedTable, path: Path, where: str, raw: object, amp: float, ph: float):
    """Append one constituent, refusing unknown names, duplicates and negative amplitudes."""
    if not isinstance(raw, str) or not raw.strip():
        raise InputError(f"{path}: {where}.name: missing constituent name")
    name = canonical(raw)
    if not known(name):
        raise InputError(
            f"{path}: {where}.name: constituent {raw!r} is unknown to the tide engine; "
            "refusing the table rather than dropping it"
        )
    if any(name == n for n, _, _ in table.constituents):
        raise InputError(f"{path}: {where}.name: duplicate constituent {raw!r} ({name})")
    if amp < 0:
        raise InputError(f"{path}: {where}.amplitude: {amp} is negative")
    table.constituents.append((name, amp, ph % 360.0))


def detect_format(path: Path, text: str) -> str:
    """'noaa', 'neaps' or 'ticon' from a file's content; InputError when not obvious."""
    if text.lstrip().startswith("{"):
        data = _json(path, text)
        if "HarmonicConstituents" in data:
            return "noaa"
        if "harmonic_constituents" in data:
            return "neaps"
        raise InputError(
            f"{path}: format: JSON without HarmonicConstituents (NOAA) or "
            "harmonic_constituents (neaps); give --format"
        )
    return "ticon"


def _json(path: Path, text: str) -> dict:
    """A JSON object, or InputError."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: line {exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: top level: expected a JSON object")
    return data


def read_neaps(path: Path, text: str) -> PublishedTable:
    """A neaps tide-database station JSON (amplitudes in metres, datums in metres)."""
    data = _json(path, text)
    rows = data.get("harmonic_constituents")
    if not isinstance(rows, list) or not rows:
        raise InputError(f"{path}: harmonic_constituents: missing or empty list")
    licence = data.get("license") if isinstance(data.get("license"), dict) else {}
    source = data.get("source") if isinstance(data.get("source"), dict) else {}
    table = PublishedTable(
        station=str(data.get("id", path.stem)),
        name=str(data.get("name", "")),
        source=f"neaps tide-database, {source.get('name', 'unknown source')}",
        licence=f"{licence.get('type', 'unknown')} {licence.get('url', '')}".strip(),
        attribution=str(data.get("attribution", "")),
        chart_datum=str(data.get("chart_datum", "")),
    )
    datums = data.get("datums") or {}
    if not isinstance(datums, dict):
        raise InputError(f"{path}: datums: expected an object of name: metres")
    for key, value in datums.items():
        table.datums[str(key)] = _number(value, path, f"datums.{key}")
    for i, row in enumerate(rows):
        where = f"harmonic_constituents[{i}]"
        if not isinstance(row, dict):
            raise InputError(f"{path}: {where}: expected an object")
        amp = _number(row.get("amplitude"), path, f"{where}.amplitude")
        phase = _number(row.get("phase"), path, f"{where}.phase")
        _add(table, path, where, row.get("name"), amp, phase)
    if isinstance(data.get("epoch"), dict):
        epoch = data["epoch"]
        table.notes.append(f"record {epoch.get('start', '?')} to {epoch.get('end', '?')}")
    return table


def read_noaa(path: Path, text: str, station: str | None) -> PublishedTable:
    """A NOAA CO-OPS mdapi harcon.json (phase_GMT used; units feet or meters)."""
    data = _json(path, text)
    rows = data.get("HarmonicConstituents")
    if not isinstance(rows, list) or not rows:
        raise InputError(f"{path}: HarmonicConstituents: missing or empty list")
    units = str(data.get("units", "")).lower()
    if units not in ("feet", "meters", "metres"):
        raise InputError(f"{path}: units: {data.get('units')!r}; expected 'feet' or 'meters'")
    scale = FEET if units == "feet" else 1.0
    table = PublishedTable(
        station=station or path.stem,
        name="",
        source="NOAA CO-OPS harmonic constituents (mdapi harcon.json), phase_GMT",
        licence="public domain (https://tidesandcurrents.noaa.gov/disclaimers.html)",
        attribution="NOAA National Ocean Service, Center for Operational Oceanographic "
        "Products and Services (CO-OPS)",
    )
    for i, row in enumerate(rows):
        where = f"HarmonicConstituents[{i}]"
        if not isinstance(row, dict):
            raise InputError(f"{path}: {where}: expected an object")
        amp = _number(row.get("amplitude"), path, f"{where}.amplitude") * scale
        phase = _number(row.get("phase_GMT"), path, f"{where}.phase_GMT")
        _add(table, path, where, row.get("name"), amp, phase)
    table.notes.append(f"amplitudes converted from {units} to metres")
    table.notes.append("harcon.json has no datums: MSL above chart datum is in datums.json")
    return table


def _ticon_rows(path: Path, text: str) -> list[tuple[int, list[str]]]:
    """(line number, 13 fields) of every data line of a TICON file."""
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in (line.split("\t") if "\t" in line else line.split())]
        if len(fields) != len(TICON_COLUMNS):
            raise InputError(
                f"{path}: line {n}: expected {len(TICON_COLUMNS)} columns "
                f"({' '.join(TICON_COLUMNS)}), found {len(fields)}"
            )
        rows.append((n, fields))
    if not rows:
        raise InputError(f"{path}: line 0: no TICON rows")
    return rows


def read_ticon(path: Path, text: str, station: str | None) -> PublishedTable:
    """A TICON-4 text file: tab-separated, no header, amplitudes in cm (see TICON_COLUMNS)."""
    rows = _ticon_rows(path, text)
    sources = sorted({fields[-1] for _, fields in rows})
    if station is None and len(sources) > 1:
        raise InputError(
            f"{path}: record_source: {len(sources)} stations in the file; choose one "
            f"with --station (e.g. {sources[0]})"
        )
    chosen = station or sources[0]
    rows = [(n, f) for n, f in rows if f[-1] == chosen]
    if not rows:
        raise InputError(f"{path}: record_source: no rows for station {chosen!r}")
    first = rows[0][1]
    table = PublishedTable(
        station=chosen,
        name="",
        source=f"TICON-4 ({first[0]} N, {first[1]} E; record {first[10]} to {first[11]})",
        licence=CC_BY,
        attribution=TICON_SOURCE,
    )
    for n, fields in rows:
        where = f"line {n}"
        amp = _number(fields[3], path, f"{where}: ampl") / 100.0
        phase = _number(fields[4], path, f"{where}: phase")
        _add(table, path, where, fields[2], amp, phase)
    table.notes.append("amplitudes converted from cm to metres; TICON gives no datums")
    return table


def read_published(path: Path, fmt: str | None, station: str | None) -> PublishedTable:
    """Read FILE in the given format (None: detect it)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = "file not found" if isinstance(exc, FileNotFoundError) else str(exc)
        raise InputError(f"{path}: cannot read: {reason}") from None
    fmt = fmt or detect_format(path, text)
    if fmt == "neaps":
        return read_neaps(path, text)
    if fmt == "noaa":
        return read_noaa(path, text, station)
    return read_ticon(path, text, station)


def level_reference(datum: str | None, z0_m: float | None) -> str:
    """What an imported table's levels are measured from (its `# Levels on:` comment)."""
    if z0_m is not None:
        return NATIONAL_DATUM
    if datum is not None:
        return f"the source's {datum} (not the national datum)"
    return "the station's mean sea level (not the national datum): import with --z0"


def mean_level(table: PublishedTable, path: Path, datum: str | None, z0_m: float | None):
    """(Z0 in metres, how it was chosen): --z0 as given, --datum from the source's datums."""
    if z0_m is not None:
        return z0_m, "Z0 given on the command line (--z0)"
    if datum is None:
        return 0.0, "Z0 = 0: levels are relative to the station's mean sea level"
    if datum in NOT_LEVELS:
        raise InputError(f"{path}: datums.{datum}: a range or interval, not a level; use --z0")
    known_datums = ", ".join(sorted(set(table.datums) - NOT_LEVELS)) or "none"
    if "MSL" not in table.datums or datum not in table.datums:
        raise InputError(
            f"{path}: datums.{datum}: the source gives no MSL or {datum} (it gives: "
            f"{known_datums}); use --z0"
        )
    return table.datums["MSL"] - table.datums[datum], f"Z0 = MSL - {datum} from the source"


def header_credit(path: Path) -> Credit | None:
    """The credit a constituent table's header asks for (its `Licence:` and `Attribution:`
    lines, as `write_published` writes them), or None when it names no licence."""
    fields: dict[str, str] = {}
    try:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if not line.startswith("#"):
                    break
                key, sep, value = line[1:].strip().partition(": ")
                if sep and key in ("Source", "Licence", "Attribution"):
                    fields.setdefault(key, value.strip())
    except (OSError, UnicodeDecodeError):
        return None  # `check` and the tide source report unreadable tables
    if not fields.get("Licence") and not fields.get("Attribution"):
        return None
    # "CC BY 4.0 (https://…)" or "CC-BY-4.0 https://…": the name, without its link.
    licence = fields.get("Licence", "").split(" (")[0].split(" http")[0].strip()
    provider = fields.get("Attribution") or fields.get("Source", "")
    return Credit("tide", provider, licence or "?")


def write_published(
    table: PublishedTable, origin: str, z0_m: float, how: str, out: TextIO, reference: str
) -> None:
    """Write our constituent CSV, with source, licence, attribution and datums as comments."""
    title = f"{table.name} ({table.station})" if table.name else table.station
    lines = [
        f"{title}: imported by `floodwatch tide import` from {origin}",
        f"Source: {table.source}",
        f"Licence: {table.licence}",
    ]
    if table.attribution:
        lines.append(f"Attribution: {table.attribution}")
    if table.datums:
        datums = ", ".join(f"{k} {v:.3f}" for k, v in table.datums.items())
        chart = table.chart_datum or "?"
        lines.append(f"Datums, m on the source's reference (chart datum {chart}): {datums}")
    lines += [f"{how}; Z0 is the mean level the predictions are read on.", *table.notes]
    lines.append(f"{REFERENCE_COMMENT.removeprefix('# ')} {reference}")
    lines.append(
        "Amplitudes in metres; phases are Greenwich phase lags in degrees "
        "(convention: docs/model.md, Tide conventions)."
    )
    for line in lines:
        out.write(f"# {line}\n")
    out.write("constituent,amplitude_m,phase_deg\n")
    out.write(f"Z0,{z0_m:.4f},0\n")
    for name, amplitude_m, phase_deg in table.constituents:
        out.write(f"{name},{amplitude_m:.5f},{phase_deg:.2f}\n")
