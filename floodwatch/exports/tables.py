"""Exports for planners and operators: per-road flood statistics and the event log.

Everything streams: statistics are one GROUP BY over the event table (one row per
segment comes back, never one per event), and events are written as the
database yields them, so a year of a whole province fits in a few tens of MB.
Writers take a binary or a text file object; headers are Vietnamese.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import shapely

from floodwatch.core.events import OBSERVED
from floodwatch.core.geo import Geodata
from floodwatch.core.text import Credit
from floodwatch.core.text import label as word
from floodwatch.db.events import EventFilter, EventRecord
from floodwatch.db.store import Store

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]
PROGRESS_EVERY = 1000  # rows between two progress calls
DATE_FMT = "%d/%m/%Y"
TIME_FMT = "%d/%m/%Y %H:%M"

# Ranking weight by the segment's priority (1 = most important road, e.g. QL1).
PRIORITY_WEIGHT = {1: 1.5, 2: 1.0}
LOW_PRIORITY_WEIGHT = 0.5  # priority 3 and below
SCORE_FORMULA = (
    "Điểm = Σ (giờ ngập của đợt trong kỳ × độ sâu đỉnh của đợt, m) × hệ số ưu tiên; "
    "hệ số ưu tiên = 1,5 (ưu tiên 1), 1,0 (ưu tiên 2), 0,5 (ưu tiên 3 trở xuống). "
    "Phần Σ là số mét-giờ nước trên mặt đường (cận trên: mỗi đợt tính theo độ sâu đỉnh), "
    "nên đường ngập sâu và lâu, lại quan trọng, xếp trước."
)
SAMPLE_WARNING = (
    "Lưu ý: độ sâu ngập là ước tính của mô hình từ mực nước, lượng mưa và cao độ mặt "
    "đường, không phải số đo trực tiếp. Tọa độ trạm, tuyến đường và cao độ trong bộ dữ "
    "liệu mẫu đi kèm phần mềm là gần đúng: cần kiểm tra trước khi dùng để quyết định đầu tư."
)


@dataclass(frozen=True, slots=True)
class MaintenanceRow:
    """Flood statistics of one segment over a period (zeros where nothing happened)."""

    rank: int
    segment_id: str
    name: str
    ward: str
    unit: str
    priority: int
    length_m: float
    crest_m: float
    events: int
    flood_days: int
    hours_under_water: float
    max_peak_depth_m: float
    mean_peak_depth_m: float
    tide_share: float
    rain_share: float
    compound_share: float
    worst_event_date: date | None  # local date of the deepest event's peak
    last_event_at: datetime | None  # local start of the latest event
    field_reports: int
    depth_hours: float  # Σ hours × peak depth, m·h
    score: float
    # Hours of the period the road was blind (mất tín hiệu): few events then is not "dry".
    hours_without_data: float = 0.0


# (header, attribute, XLSX number format, rounding for CSV/GeoJSON, XLSX column width)
MAINTENANCE_COLUMNS: tuple[tuple[str, str, str | None, int | None, int], ...] = (
    ("Hạng", "rank", "0", None, 7),
    ("Mã tuyến", "segment_id", None, None, 22),
    ("Tên đường", "name", None, None, 34),
    ("Phường/xã", "ward", None, None, 20),
    ("Đơn vị phụ trách", "unit", None, None, 18),
    ("Ưu tiên", "priority", "0", None, 8),
    ("Chiều dài (m)", "length_m", "#,##0", 0, 11),
    ("Cao độ mặt đường (m)", "crest_m", "0.00", 3, 11),
    ("Số đợt ngập", "events", "0", None, 10),
    ("Số ngày ngập", "flood_days", "0", None, 10),
    ("Tổng giờ ngập (giờ)", "hours_under_water", "#,##0.0", 2, 12),
    ("Độ sâu lớn nhất (m)", "max_peak_depth_m", "0.00", 3, 11),
    ("Độ sâu đỉnh trung bình (m)", "mean_peak_depth_m", "0.00", 3, 12),
    ("Tỷ lệ đợt do triều cường", "tide_share", "0%", 3, 11),
    ("Tỷ lệ đợt do mưa", "rain_share", "0%", 3, 11),
    ("Tỷ lệ đợt do mưa kết hợp triều", "compound_share", "0%", 3, 13),
    ("Ngày ngập sâu nhất", "worst_event_date", "dd/mm/yyyy", None, 12),
    ("Đợt ngập gần nhất", "last_event_at", "dd/mm/yyyy hh:mm", None, 16),
    ("Số báo cáo hiện trường", "field_reports", "0", None, 11),
    ("Mét-giờ ngập (m·giờ)", "depth_hours", "#,##0.00", 3, 12),
    ("Điểm xếp hạng", "score", "#,##0.00", 3, 11),
    ("Giờ không có dữ liệu (giờ)", "hours_without_data", "#,##0.0", 2, 12),
)
MAINTENANCE_HEADERS = tuple(c[0] for c in MAINTENANCE_COLUMNS)

# (header, XLSX number format, XLSX column width) of one exported event.
EVENT_COLUMNS: tuple[tuple[str, str | None, int], ...] = (
    ("Mã đợt", "0", 9),
    ("Mã tuyến", None, 22),
    ("Tên đường", None, 34),
    ("Phường/xã", None, 20),
    ("Đơn vị phụ trách", None, 18),
    ("Loại", None, 10),
    ("Trạng thái", None, 12),
    ("Bắt đầu", "dd/mm/yyyy hh:mm", 16),
    ("Kết thúc", "dd/mm/yyyy hh:mm", 16),
    ("Thời gian ngập (giờ)", "#,##0.0", 11),
    ("Độ sâu lớn nhất (m)", "0.00", 11),
    ("Lúc sâu nhất", "dd/mm/yyyy hh:mm", 16),
    ("Mức ngập cao nhất", "0", 9),
    ("Nguyên nhân", None, 22),
    ("Dự kiến bắt đầu", "dd/mm/yyyy hh:mm", 16),
    ("Người xác nhận", None, 14),
    ("Lúc xác nhận", "dd/mm/yyyy hh:mm", 16),
    ("Báo động sai", None, 9),
)
EVENT_HEADERS = tuple(c[0] for c in EVENT_COLUMNS)
# The events sheet of a maintenance workbook: observed, not false alarms, so fewer columns
# (openpyxl costs about 40 µs a cell, and a province-year has 100,000+ events).
MAINTENANCE_EVENT_COLUMNS = (0, 1, 2, 7, 8, 9, 10, 11, 12, 13, 15)


# --- statistics ----------------------------------------------------------------


def priority_weight(priority: int) -> float:
    """The ranking weight of a segment's priority (see SCORE_FORMULA)."""
    return PRIORITY_WEIGHT.get(priority, LOW_PRIORITY_WEIGHT if priority > 2 else 1.5)


def _as_utc(value) -> datetime | None:
    """A database time (aware, or naive UTC text/datetime from an untyped expression) in UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _merged(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of (start, end) epoch intervals."""
    total, reach = 0.0, float("-inf")
    for lo, hi in sorted(intervals):
        lo = max(lo, reach)
        if hi > lo:
            total += hi - lo
            reach = hi
    return total


def gap_hours(store: Store, start: datetime, end: datetime, geodata: Geodata) -> dict[str, float]:
    """Per segment, the hours of [start, end] its tide or rain input was blind."""
    lo_s, hi_s = start.timestamp(), end.timestamp()
    by_pair: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for gap in store.health.gaps(start, end):
        begin = max(gap.started_at.timestamp(), lo_s)
        finish = min(gap.ended_at.timestamp() if gap.ended_at else hi_s, hi_s)
        if finish > begin:
            by_pair.setdefault((gap.station, gap.variable), []).append((begin, finish))
    if not by_pair:
        return {}
    hours = {}
    for segment in geodata.segments:
        spans = by_pair.get((segment.tide_station, "water_level"), []) + by_pair.get(
            (segment.rain_station, "rainfall"), []
        )
        if spans:
            hours[segment.id] = _merged(spans) / 3600.0
    return hours


def _event_values(st, zone: ZoneInfo) -> dict[str, object]:
    """The event statistics fields of one segment's row (zeros without events)."""
    n = st.events if st is not None else 0
    if not n:
        return dict(
            events=n,
            flood_days=0,
            hours_under_water=0.0,
            max_peak_depth_m=0.0,
            mean_peak_depth_m=0.0,
            tide_share=0.0,
            rain_share=0.0,
            compound_share=0.0,
            worst_event_date=None,
            last_event_at=None,
            depth_hours=0.0,
        )
    worst_at = _as_utc(st.worst_at)
    last_at = _as_utc(st.last_at)
    return dict(
        events=n,
        flood_days=int(st.flood_days or 0),
        hours_under_water=float(st.hours or 0.0),
        max_peak_depth_m=float(st.max_peak or 0.0),
        mean_peak_depth_m=float(st.mean_peak or 0.0),
        tide_share=st.tide / n,
        rain_share=st.rain / n,
        compound_share=st.compound / n,
        worst_event_date=worst_at.astimezone(zone).date() if worst_at else None,
        last_event_at=last_at.astimezone(zone) if last_at else None,
        depth_hours=float(st.depth_hours or 0.0),
    )


def _segment_values(
    segment, st, zone: ZoneInfo, report_counts, blind_hours: dict[str, float]
) -> dict[str, object]:
    """The fields of one segment's MaintenanceRow, all but its rank."""
    values = _event_values(st, zone)
    return dict(
        segment_id=segment.id,
        name=segment.name,
        ward=segment.ward,
        unit=segment.unit,
        priority=segment.priority,
        length_m=segment.length_m,
        crest_m=segment.crest_m,
        **values,
        field_reports=int(report_counts.get(segment.id, 0)),
        score=values["depth_hours"] * priority_weight(segment.priority),
        hours_without_data=blind_hours.get(segment.id, 0.0),
    )


def maintenance_rows(
    store: Store,
    start: datetime,
    end: datetime,
    geodata: Geodata,
    *,
    zone: ZoneInfo | None = None,
    progress: Progress | None = None,
) -> Iterator[MaintenanceRow]:
    """Per-segment flood statistics over [start, end], highest score first.

    Counts observed events overlapping the window, false alarms excluded; hours
    are clipped to the window and an event still open counts up to `end`.
    Every segment of the geodata gets a row. Days are local dates in `zone`
    (Asia/Ho_Chi_Minh by default; its UTC offset at `start` is used for the
    whole window, which is exact for zones without daylight saving).
    """
    zone = zone or ZoneInfo("Asia/Ho_Chi_Minh")
    offset = start.astimezone(zone).utcoffset() or timedelta(0)
    stats, report_counts = store.stats.maintenance(start, end, offset.total_seconds())
    blind_hours = gap_hours(store, start, end, geodata)
    unknown = set(stats) - {s.id for s in geodata.segments}
    if unknown:
        logger.warning("exports: %d segments with events are not in the geodata", len(unknown))

    unranked = [
        _segment_values(segment, stats.get(segment.id), zone, report_counts, blind_hours)
        for segment in geodata.segments
    ]
    unranked.sort(key=lambda r: (-r["score"], -r["hours_under_water"], r["segment_id"]))
    pending = 0
    for rank, values in enumerate(unranked, start=1):
        yield MaintenanceRow(rank=rank, **values)
        pending += 1
        if progress is not None and pending == PROGRESS_EVERY:
            progress(pending)
            pending = 0
    if progress is not None and pending:
        progress(pending)


def maintenance_record(row: MaintenanceRow) -> dict[str, object]:
    """A row as header → value, rounded and with dd/mm/yyyy dates (CSV and GeoJSON)."""
    record: dict[str, object] = {}
    for header, attr, _fmt, digits, _width in MAINTENANCE_COLUMNS:
        value = getattr(row, attr)
        if isinstance(value, datetime):
            value = value.strftime(TIME_FMT)
        elif isinstance(value, date):
            value = value.strftime(DATE_FMT)
        elif digits is not None and value is not None:
            value = round(value, digits) if digits else int(round(value))
        record[header] = value
    return record


def maintenance_notes(
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
    source: str,
    generated_at: datetime,
    credits: Sequence[Credit] = (),
) -> list[tuple[str, str]]:
    """The notes sheet of a maintenance export: period, formula, source, data credits, caveats."""
    credited = [("Nguồn dữ liệu", "\n".join(c.line() for c in credits))] if credits else []
    return [
        ("Kỳ thống kê", f"{start.astimezone(zone):{TIME_FMT}} – {end.astimezone(zone):{TIME_FMT}}"),
        ("Múi giờ", str(zone.key)),
        ("Thời điểm xuất", generated_at.astimezone(zone).strftime(TIME_FMT)),
        ("Công thức điểm xếp hạng", SCORE_FORMULA),
        (
            "Các đợt được tính",
            "Đợt ngập quan trắc (không tính dự báo) có thời gian giao với kỳ thống kê, "
            "trừ các đợt bị đánh dấu báo động sai. Giờ ngập cắt theo kỳ; đợt chưa kết thúc "
            "tính đến hết kỳ. Số ngày ngập là số ngày (theo giờ địa phương) có nước trên mặt "
            "đường. Tỷ lệ theo nguyên nhân là phần số đợt.",
        ),
        (
            "Giờ không có dữ liệu",
            "Số giờ trong kỳ tuyến đường không được theo dõi vì trạm mực nước hoặc trạm mưa "
            "của nó mất tín hiệu (mọi nguồn của trạm đều không có số liệu mới). Trong những "
            "giờ đó không biết đường có ngập hay không: ít đợt ngập mà nhiều giờ không có dữ "
            "liệu không có nghĩa là đường không ngập.",
        ),
        ("Nguồn", source),
        *credited,
        ("Cảnh báo", SAMPLE_WARNING),
    ]


# --- spreadsheet cells ------------------------------------------------------------

# A text cell starting with one of these is read as a formula by spreadsheets (OWASP
# "CSV injection"): a road or operator named "=HYPERLINK(…)" would become a live link.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def formula_like(value: object) -> bool:
    """Whether a cell is text that a spreadsheet would take for a formula."""
    return isinstance(value, str) and value.startswith(FORMULA_STARTS)


def neutralised(value: object) -> object:
    """A CSV cell that no spreadsheet runs: formula-like text gets a leading apostrophe
    (OWASP's advice); numbers, times and other text are unchanged."""
    return "'" + value if formula_like(value) else value


def csv_cell(value: object) -> object:
    """A cell for CSV: local times as dd/mm/yyyy HH:MM, None as empty, text neutralised."""
    if isinstance(value, datetime):
        return value.strftime(TIME_FMT)
    return "" if value is None else neutralised(value)


def _tick(progress: Progress | None, done: int) -> None:
    """Report progress every PROGRESS_EVERY rows."""
    if progress is not None and done % PROGRESS_EVERY == 0:
        progress(PROGRESS_EVERY)


def _tock(progress: Progress | None, done: int) -> None:
    """Report the rows since the last PROGRESS_EVERY boundary."""
    if progress is not None and done % PROGRESS_EVERY:
        progress(done % PROGRESS_EVERY)


@contextlib.contextmanager
def _text(out, bom: bool = False):
    """A text view of `out` (UTF-8, no newline translation); binary streams are wrapped."""
    if isinstance(out, io.TextIOBase):
        stream = out
    else:
        stream = io.TextIOWrapper(out, encoding="utf-8", newline="")
    if bom:
        stream.write("\ufeff")  # lets Excel read the Vietnamese text as UTF-8
    try:
        yield stream
    finally:
        stream.flush()
        if stream is not out:
            stream.detach()  # leave the caller's binary stream open


def write_maintenance_csv(rows: Iterable[MaintenanceRow], out, *, bom: bool = False) -> int:
    """Write maintenance rows as CSV with Vietnamese headers; returns the row count."""
    n = 0
    with _text(out, bom) as stream:
        writer = csv.writer(stream)
        writer.writerow(MAINTENANCE_HEADERS)
        for row in rows:
            writer.writerow([csv_cell(v) for v in maintenance_record(row).values()])
            n += 1
    return n


def write_maintenance_geojson(rows: Iterable[MaintenanceRow], geodata: Geodata, out) -> int:
    """Write a FeatureCollection: each segment's WGS84 geometry with its statistics."""
    n = 0
    with _text(out) as stream:
        stream.write('{"type": "FeatureCollection", "features": [\n')
        for row in rows:
            segment = geodata.segment(row.segment_id)
            feature = {
                "type": "Feature",
                "id": row.segment_id,
                "geometry": json.loads(shapely.to_geojson(segment.geometry)),
                "properties": maintenance_record(row),
            }
            stream.write((",\n" if n else "") + json.dumps(feature, ensure_ascii=False))
            n += 1
        stream.write("\n]}\n")
    return n


# --- events --------------------------------------------------------------------


def _local(when: datetime | None, zone: ZoneInfo) -> datetime | None:
    """An aware time as a local aware datetime."""
    return when.astimezone(zone) if when else None


def event_values(event: EventRecord, zone: ZoneInfo) -> list[object]:
    """An event as typed cells in EVENT_COLUMNS order, local times."""
    opened, closed = _local(event.opened_at, zone), _local(event.closed_at, zone)
    hours = (closed - opened).total_seconds() / 3600 if closed else None
    return [
        event.id,
        event.segment_id,
        event.segment_name,
        event.ward,
        event.unit,
        word("kind", event.kind),
        word("status", event.status),
        opened,
        closed,
        None if hours is None else round(hours, 2),
        event.peak_depth_m,
        _local(event.peak_at, zone),
        event.max_level,
        word("cause", event.cause) if event.cause else None,
        _local(event.expected_onset_at, zone),
        event.ack_by,
        _local(event.ack_at, zone),
        "có" if event.false_alarm else "",
    ]


def write_events_csv(
    events: Iterable[EventRecord], out, zone: ZoneInfo, *, bom: bool = False, progress=None
) -> int:
    """Write events as CSV with Vietnamese headers and local times."""
    n = 0
    with _text(out, bom) as stream:
        writer = csv.writer(stream)
        writer.writerow(EVENT_HEADERS)
        for event in events:
            writer.writerow([csv_cell(v) for v in event_values(event, zone)])
            n += 1
            _tick(progress, n)
    _tock(progress, n)
    return n


def write_events_json(
    events: Iterable[EventRecord], out, *, progress: Progress | None = None
) -> int:
    """Write events as a JSON array in the DESIGN.md contract (ISO times), one per line."""
    n = 0
    with _text(out) as stream:
        stream.write("[")
        for event in events:
            line = json.dumps(event.as_json(), ensure_ascii=False)
            stream.write(("," if n else "") + "\n" + line)
            n += 1
            _tick(progress, n)
        stream.write("\n]\n")
    _tock(progress, n)
    return n


class _Sheet:
    """A write-only sheet with a bold frozen header row and per-column number formats."""

    def __init__(self, workbook, title: str, headers: Sequence[str], formats, widths):
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Alignment, Font
        from openpyxl.utils import get_column_letter

        self.ws = workbook.create_sheet(title)
        self.ws.freeze_panes = "A2"
        for i, width in enumerate(widths, start=1):
            self.ws.column_dimensions[get_column_letter(i)].width = width
        bold, wrap = Font(bold=True), Alignment(wrap_text=True, vertical="top")
        header_cells = []
        for text in headers:
            cell = WriteOnlyCell(self.ws, value=text)
            cell.font, cell.alignment = bold, wrap
            header_cells.append(cell)
        self.ws.append(header_cells)
        self._cell = WriteOnlyCell
        self.formats = list(formats)
        self.last_column = get_column_letter(len(headers))
        self.rows = 0

    def append(self, values: Sequence[object]) -> None:
        """Append one row, formatting the cells whose column has a number format; text that
        looks like a formula is stored as text (with Excel's quote prefix)."""
        cells = []
        for value, fmt in zip(values, self.formats, strict=True):
            if isinstance(value, datetime):
                value = value.replace(tzinfo=None)  # Excel has no time zones: local time
            if formula_like(value):  # kept as typed, as text: never a formula
                cell = self._cell(self.ws, value=value)
                cell.data_type, cell.quotePrefix = "s", True
                cells.append(cell)
            elif fmt is None or value is None or value == "":
                cells.append(value)
            else:
                cell = self._cell(self.ws, value=value)
                cell.number_format = fmt
                cells.append(cell)
        self.ws.append(cells)
        self.rows += 1

    def finish(self) -> None:
        """Add an autofilter over the header and every row written."""
        self.ws.auto_filter.ref = f"A1:{self.last_column}{self.rows + 1}"


def _save_workbook(workbook, out) -> None:
    """Save a workbook to a path or a binary stream (never a text one)."""
    if isinstance(out, io.TextIOBase):
        out = out.buffer
    workbook.save(out)


def write_maintenance_xlsx(
    rows: Iterable[MaintenanceRow],
    events_iter: Iterable[EventRecord],
    out,
    notes: Sequence[tuple[str, str]],
    *,
    zone: ZoneInfo | None = None,
    progress: Progress | None = None,
) -> tuple[int, int]:
    """Write a 3-sheet workbook: roads, their events, notes; returns (rows, events).

    A write-only workbook: rows go to disk as they are appended.
    """
    from openpyxl import Workbook

    zone = zone or ZoneInfo("Asia/Ho_Chi_Minh")
    workbook = Workbook(write_only=True)
    roads = _Sheet(
        workbook,
        "Tuyến đường",
        MAINTENANCE_HEADERS,
        [c[2] for c in MAINTENANCE_COLUMNS],
        [c[4] for c in MAINTENANCE_COLUMNS],
    )
    for row in rows:
        values = [getattr(row, c[1]) for c in MAINTENANCE_COLUMNS]
        roads.append(values)
    roads.finish()

    keep = MAINTENANCE_EVENT_COLUMNS
    events = _Sheet(
        workbook,
        "Các đợt ngập",
        [EVENT_HEADERS[i] for i in keep],
        [EVENT_COLUMNS[i][1] for i in keep],
        [EVENT_COLUMNS[i][2] for i in keep],
    )
    for event in events_iter:
        values = event_values(event, zone)
        events.append([values[i] for i in keep])
        _tick(progress, events.rows)
    _tock(progress, events.rows)
    events.finish()

    notes_sheet = _Sheet(workbook, "Ghi chú", ("Mục", "Nội dung"), (None, None), (26, 110))
    for label, text in notes:
        notes_sheet.append((label, text))
    _save_workbook(workbook, out)
    return roads.rows, events.rows


def write_events_xlsx(
    events: Iterable[EventRecord], out, zone: ZoneInfo, *, progress: Progress | None = None
) -> int:
    """Write events as a one-sheet workbook (Vietnamese headers, local times)."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = _Sheet(
        workbook,
        "Các đợt ngập",
        EVENT_HEADERS,
        [c[1] for c in EVENT_COLUMNS],
        [c[2] for c in EVENT_COLUMNS],
    )
    for event in events:
        sheet.append(event_values(event, zone))
        _tick(progress, sheet.rows)
    _tock(progress, sheet.rows)
    sheet.finish()
    _save_workbook(workbook, out)
    return sheet.rows


def write_events(
    store: Store,
    flt: EventFilter,
    fmt: str,
    out,
    zone: ZoneInfo,
    *,
    bom: bool = False,
    progress: Progress | None = None,
) -> int:
    """Stream the events matching a filter (oldest first) as csv, xlsx or json."""
    events = store.events.stream(flt)
    if fmt == "csv":
        return write_events_csv(events, out, zone, bom=bom, progress=progress)
    if fmt == "xlsx":
        return write_events_xlsx(events, out, zone, progress=progress)
    if fmt == "json":
        return write_events_json(events, out, progress=progress)
    raise ValueError(f"unknown events format {fmt!r}: csv, xlsx or json")


def maintenance_events_filter(start: datetime, end: datetime) -> EventFilter:
    """The events a maintenance export counts: observed, not false alarms, in the window."""
    return EventFilter(start=start, end=end, kind=OBSERVED, false_alarm=False)
