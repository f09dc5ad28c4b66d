"""The daily bulletin, in the shape of the province's "Tin cảnh báo ngập lụt do triều cường".

Also the Telegram-HTML helpers every message needs: `split_html` (parts within Telegram's
4,096 limit, never cut inside a tag or entity, tags balanced in each part) and
`html_to_plain` (the plain-text fallback). Pure: no database, network or clock.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from floodwatch.core.text import CHANGED_VI, Credit, centimetres, level_mark, local_time
from floodwatch.core.text import label as word

TELEGRAM_LIMIT = 4096
# Column widths of the station table; the widest row stays near 36 characters, which a
# phone shows without scrolling.
NAME_W, RIVER_W, ALARM_W, LABEL_W, VALUE_W = 10, 9, 11, 22, 4
NO_VALUE = "—"


@dataclass(frozen=True)
class StationLine:
    """One station row: alarm levels (m), the latest level, forecast high waters."""

    name: str
    river: str | None
    alarm_m: tuple[float | None, float | None, float | None]  # BĐ I, II, III
    observed_at: datetime | None
    observed_m: float | None
    observed_is_prediction: bool  # no fresh observation: the value is the tide prediction
    peaks: Sequence[tuple[datetime, float]]  # forecast high waters for the next two days


@dataclass(frozen=True)
class RoadLine:
    """One road expected to flood: onset, peak depth (m) and its time, level and cause."""

    name: str
    ward: str
    onset_at: datetime
    peak_at: datetime
    peak_m: float
    level: int
    cause: str  # tide | rain | compound


def _esc(value: str) -> str:
    """Dynamic text made safe for Telegram HTML."""
    return html.escape(value, quote=False)


def _nfc(value: str) -> str:
    """Precomposed Vietnamese letters, so one letter is one column in the table."""
    return unicodedata.normalize("NFC", value)


def _cm(value_m: float | None) -> str:
    """A water level in whole cm without the unit, as the province's table prints it."""
    return NO_VALUE if value_m is None else f"{round(value_m * 100):d}"


def alarm_reached(level_m: float, alarm_m: Sequence[float | None]) -> int:
    """The highest alarm level (1-3) that `level_m` reaches, 0 below BĐ I or when unknown."""
    reached = 0
    for index, threshold in enumerate(alarm_m, start=1):
        if threshold is not None and round(level_m * 100) >= round(threshold * 100):
            reached = index
    return reached


def _level_row(label: str, value_m: float | None, alarm_m: Sequence[float | None]) -> str:
    """`  Đỉnh 17:00 12/12        92 ≥BĐ III`: a label, the level in cm, the alarm mark."""
    row = f"  {label:<{LABEL_W}}{_cm(value_m):>{VALUE_W}}"
    if value_m is not None and (reached := alarm_reached(value_m, alarm_m)):
        row += f" ≥{word('alarm', reached)}"
    return row


def _station_rows(station: StationLine, at: datetime, zone: ZoneInfo) -> list[str]:
    """Table rows for one station, unescaped."""
    name, river = _nfc(station.name), _nfc(station.river or NO_VALUE)
    alarms = "/".join(_cm(a) for a in station.alarm_m)
    rows = []
    if len(name) > NAME_W or len(river) > RIVER_W:
        # Too long for the columns: the name gets its own line rather than a wide table.
        rows.append(name)
        rows.append(f"{river:<{NAME_W + 1 + RIVER_W}} {alarms:>{ALARM_W}}")
    else:
        rows.append(f"{name:<{NAME_W}} {river:<{RIVER_W}} {alarms:>{ALARM_W}}")

    if station.observed_at is None or station.observed_m is None:
        rows.append(f"  {'H':<{LABEL_W}}{NO_VALUE:>{VALUE_W}}")
    else:
        same_day = station.observed_at.astimezone(zone).date() == at.astimezone(zone).date()
        when = local_time(station.observed_at, zone, with_date=False)
        if not same_day:
            when += station.observed_at.astimezone(zone).strftime(" %d/%m")
        if station.observed_is_prediction:
            when += " (dự báo)"
        rows.append(_level_row(f"H {when}", station.observed_m, station.alarm_m))

    if not station.peaks:
        rows.append(f"  {'Đỉnh':<{LABEL_W}}{NO_VALUE:>{VALUE_W}}")
    for peak_at, peak_m in sorted(station.peaks):
        when = peak_at.astimezone(zone).strftime("%H:%M %d/%m")
        rows.append(_level_row(f"Đỉnh {when}", peak_m, station.alarm_m))
    return rows


def _station_table(stations: Sequence[StationLine], at: datetime, zone: ZoneInfo) -> str:
    """The station table as one <pre> block."""
    header = [
        f"{'Trạm':<{NAME_W}} {'Sông':<{RIVER_W}} {'BĐ I/II/III':>{ALARM_W}}",
        f"  {'H quan trắc: giờ':<{LABEL_W}}{'cm':>{VALUE_W}}",
        f"  {'Đỉnh dự báo: giờ ngày':<{LABEL_W}}{'cm':>{VALUE_W}}",
    ]
    rule = "─" * (NAME_W + RIVER_W + ALARM_W + 2)
    rows = [*header, rule]
    for index, station in enumerate(stations):
        if index:
            rows.append("")
        rows.extend(_station_rows(station, at, zone))
    return "<pre>" + _esc("\n".join(rows)) + "</pre>"


def _road_lines(road: RoadLine, zone: ZoneInfo, level_names: Sequence[str]) -> list[str]:
    """Four short lines for one road expected to flood."""
    mark = level_mark(road.level, len(level_names))
    level_name = level_names[road.level - 1] if 1 <= road.level <= len(level_names) else ""
    same_day = road.peak_at.astimezone(zone).date() == road.onset_at.astimezone(zone).date()
    peak_when = (
        local_time(road.peak_at, zone, with_date=False)
        if same_day
        else road.peak_at.astimezone(zone).strftime("%H:%M %d/%m")
    )
    cause = word("cause", road.cause, empty="không rõ")
    lines = [
        f"{mark} <b>{_esc(road.name)}</b> ({_esc(road.ward)}), mức {road.level}".lstrip(),
        f"   từ {road.onset_at.astimezone(zone).strftime('%H:%M %d/%m')}, "
        f"sâu nhất {centimetres(road.peak_m)} lúc {peak_when}",
    ]
    if level_name:
        lines.append(f"   {_esc(level_name)}")
    lines.append(f"   Do {_esc(cause)}.")
    return lines


def compose_bulletin(
    at: datetime,
    zone: ZoneInfo,
    situation: str,
    stations: Sequence[StationLine],
    roads: Sequence[RoadLine],
    level_names: Sequence[str],
    missing: Sequence[str] = (),
    roads_without_data: Sequence[str] = (),
    credits: Sequence[Credit] = (),
) -> str:
    """The daily bulletin as Telegram HTML: what is missing first, then the situation,
    the station table and the roads expected to flood; the data credits last.

    `missing` lists, one line each, the inputs without data (station, what, since
    when); `roads_without_data` the roads whose state nobody knows, which the
    road section names instead of calling the province dry.
    """
    local = at.astimezone(zone)
    lines = [
        "<b>TIN CẢNH BÁO NGẬP LỤT DO TRIỀU CƯỜNG</b>",
        f"<i>Lúc {local:%H:%M} ngày {local:%d/%m/%Y}</i>",
        "",
    ]
    if missing:
        lines += ["<b>⚠️ KHÔNG CÓ DỮ LIỆU</b>", *(f"• {_esc(m)}" for m in missing), ""]
    lines += [
        "<b>1. Tình hình</b>",
        _esc(situation.strip()) or NO_VALUE,
        "",
        "<b>2. Mực nước các trạm</b>",
        "<i>Đơn vị cm, hệ cao độ quốc gia.\nĐỉnh: đỉnh triều dự báo 2 ngày tới.\n"
        "≥BĐ: mức báo động đã đạt. —: không có dữ liệu.</i>",
        _station_table(stations, at, zone) if stations else "Không có số liệu trạm.",
        "",
        "<b>3. Các tuyến đường dự báo ngập</b>",
    ]
    if not roads and not roads_without_data:
        lines.append("Không có tuyến đường nào dự báo ngập.")
    elif not roads:
        lines.append("Không có tuyến đường nào dự báo ngập trong số các tuyến có đủ số liệu.")
    if roads_without_data:
        names = ", ".join(_esc(name) for name in roads_without_data[:20])
        more = (
            f" và {len(roads_without_data) - 20} tuyến khác" if len(roads_without_data) > 20 else ""
        )
        lines.append(
            f"<b>{len(roads_without_data)} tuyến không có dữ liệu</b> (không rõ tình trạng): "
            f"{names}{more}."
        )
        if roads:
            lines.append("")
    ordered = sorted(roads, key=lambda r: (r.onset_at, -r.level, -r.peak_m, r.name))
    for index, road in enumerate(ordered):
        if index:
            lines.append("")
        lines.extend(_road_lines(road, zone, level_names))
    if credits:
        lines += ["", *(_credit_line(credit) for credit in credits)]
    return "\n".join(lines)


def _credit_line(credit: Credit) -> str:
    """`Dữ liệu thời tiết: Open-Meteo.com (CC BY 4.0), đã qua xử lý`, the provider linked."""
    provider = _esc(credit.provider)
    if credit.url:
        provider = f'<a href="{html.escape(credit.url)}">{provider}</a>'
    return f"<i>{_esc(credit.heading)}: {provider} ({_esc(credit.licence_vi)}), {CHANGED_VI}</i>"


# --- Telegram HTML splitting -------------------------------------------------------------

_TOKEN = re.compile(r"<[^<>]*>|&(?:#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);|[^<&]|[<&]")
_TAG_NAME = re.compile(r"<\s*(/?)\s*([A-Za-z][\w-]*)")


def _units(text: str) -> int:
    """Length in UTF-16 code units: what Telegram counts, never less than len()."""
    return len(text.encode("utf-16-le")) // 2


def _apply(stack: tuple[tuple[str, str], ...], token: str) -> tuple[tuple[str, str], ...]:
    """The open-tag stack after `token`: (name, opening tag as written) pairs."""
    if not token.startswith("<") or len(token) < 3:
        return stack
    match = _TAG_NAME.match(token)
    if not match:
        return stack
    closing, name = match.group(1), match.group(2).lower()
    if not closing:
        return (*stack, (name, token))
    for depth in range(len(stack) - 1, -1, -1):
        if stack[depth][0] == name:
            return stack[:depth]
    return stack


def _closers(stack: tuple[tuple[str, str], ...]) -> str:
    """Closing tags for every open tag, innermost first."""
    return "".join(f"</{name}>" for name, _ in reversed(stack))


_Stack = tuple[tuple[str, str], ...]
# A possible cut: (token index where the part ends, stack there).
_Cut = tuple[int, _Stack]


@dataclass(frozen=True)
class _Scan:
    """How far one part can reach from its start, and the best cut of each kind on the way."""

    end: int  # first token that no longer fits
    state: _Stack  # the open-tag stack at `end`
    newline: _Cut | None
    paragraph: _Cut | None
    space: _Cut | None
    hard: _Cut | None


def _scan_part(
    tokens: list[str], sizes: list[int], start: int, stack: _Stack, limit: int, used: int
) -> _Scan:
    """Walk tokens from `start` while they fit in `limit`, noting every place a part may end."""
    state = stack
    # Best cut of each kind: (token index where the part ends, stack there).
    newline = paragraph = space = hard = None
    end = start
    while end < len(tokens) and used + sizes[end] <= limit:
        if tokens[end] == "\n" and end > start and used + _units(_closers(state)) <= limit:
            newline = (end, state)
            if tokens[end + 1 : end + 2] == ["\n"]:
                paragraph = (end, state)
        used += sizes[end]
        state = _apply(state, tokens[end])
        end += 1
        if used + _units(_closers(state)) <= limit:
            hard = (end, state)
            if tokens[end - 1] == " ":
                space = (end, state)
    return _Scan(end, state, newline, paragraph, space, hard)


def _line_break_cut(
    tokens: list[str], start: int, newline: _Cut, paragraph: _Cut | None
) -> tuple[int, _Stack, int]:
    """Cut at a line break: (cut, stack there, line breaks to drop after it)."""
    # A blank line (between stations, between roads) is the better cut unless it
    # would leave the part less than half as full.
    if paragraph and paragraph[0] - start >= (newline[0] - start) / 2:
        newline = paragraph
    (cut, cut_stack), skip = newline, 1
    while tokens[cut + skip : cut + skip + 1] == ["\n"]:
        skip += 1
    return cut, cut_stack, skip


def _choose_cut(
    tokens: list[str], start: int, stack: _Stack, scan: _Scan
) -> tuple[int, _Stack, int]:
    """Where the part from `start` ends: (cut, stack there, tokens to drop after it)."""
    end, state, hard = scan.end, scan.state, scan.hard
    if end == len(tokens) and hard and hard[0] == end:
        return end, state, 0
    if scan.newline:
        return _line_break_cut(tokens, start, scan.newline, scan.paragraph)
    if scan.space or hard:
        cut, cut_stack = scan.space or hard
        return cut, cut_stack, 0
    # Only a tag longer than the whole limit gets here: pass it through alone.
    return start + 1, _apply(stack, tokens[start]), 0


def split_html(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Split Telegram HTML into parts of at most `limit` UTF-16 units, each balanced.

    Parts end at a line break, preferably a blank line (line breaks at a cut are dropped),
    else after a space, else, for a run with no space, at any character outside a tag or
    entity. Tags open at a cut are closed at the
    end of one part and reopened at the start of the next, so a <pre> block continues.
    """
    if limit < 64:
        raise ValueError(f"limit {limit} is too small to hold tags and text")
    tokens = _TOKEN.findall(text)
    sizes = [_units(t) for t in tokens]
    parts: list[str] = []
    stack: _Stack = ()
    start = 0
    while start < len(tokens):
        prefix = "".join(opening for _, opening in stack)
        scan = _scan_part(tokens, sizes, start, stack, limit, _units(prefix))
        cut, cut_stack, skip = _choose_cut(tokens, start, stack, scan)
        body = "".join(tokens[start:cut])
        if body.strip() and not _is_only_tags(body):
            parts.append(prefix + body + _closers(cut_stack))
        stack, start = cut_stack, cut + skip
    return parts


def _is_only_tags(body: str) -> bool:
    """True when `body` holds tags and whitespace but no text."""
    return not re.sub(r"<[^<>]*>", "", body).strip()


_LINK = re.compile(r'<a href="([^"]*)">(.*?)</a>', re.S)


def html_to_plain(text: str) -> str:
    """The plain-text fallback: tags removed (a link's address kept after its text, in
    brackets), entities turned back into characters."""
    text = _LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})", text)
    return html.unescape(re.sub(r"<[^<>]*>", "", text))
