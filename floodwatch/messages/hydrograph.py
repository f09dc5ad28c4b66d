"""Hydrograph PNG for a station: observed and predicted water level against its alarm levels.

An event's chart shows the whole event: a closed one from before its rise to after its end,
with no "now" marker; for rain and compound events, the hourly rain of the road's rain
station as bars on a second axis (mm). What is not known is a grey band labelled "Không có
dữ liệu", never a zero.

Pure: draws with matplotlib's object API (`Figure` + `FigureCanvasAgg`), never pyplot, so
no global figure state is touched and renders may run in threads. Labels are Vietnamese
and use matplotlib's bundled DejaVu Sans, which carries every Vietnamese diacritic.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import DateFormatter, DayLocator, HourLocator
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from floodwatch.core.text import metres

logger = logging.getLogger(__name__)

DPI = 100
OBSERVED_COLOUR = "#0b3d91"  # dark blue
PREDICTED_COLOUR = "#3a78c9"
# Risk-level colours of DESIGN.md for BĐ I, II, III. Light yellow is invisible on
# white, so BĐ II uses gold, its darker shade.
ALARM_COLOURS = ("#6cb4ee", "#e0b000", "#ff8c00")
ALARM_NAMES = ("BĐ I", "BĐ II", "BĐ III")
CREST_COLOUR = "#8b5a2b"  # brown, like a road embankment
NOW_COLOUR = "#c0392b"
RAIN_COLOUR = "#2e9e8f"  # teal bars, apart from the blues of the level lines
NO_DATA_COLOUR = "#e4e4e4"  # light grey band behind the lines
MARGIN_PX = {"left": 78, "right": 20, "top": 40, "bottom": 115}
RAIN_MARGIN_RIGHT_PX = 64  # room for the rain axis on the right
RAIN_AXIS_SHARE = 3.0  # the rain axis reaches 3x the wettest hour: bars stay in the lower third


@dataclass(frozen=True)
class HydrographData:
    """What one hydrograph shows; times are aware UTC, levels in m on the national datum."""

    station_name: str
    times: Sequence[datetime]
    observed_m: Sequence[float]  # NaN where there is no observation
    predicted_m: Sequence[float]  # NaN where there is no prediction
    alarm_m: tuple[float | None, float | None, float | None]  # BĐ I, II, III
    crest_m: float | None  # crest of the worst affected road
    crest_label: str | None  # that road's name
    now: datetime  # also names the UTC offset of the time axis
    show_now: bool = True  # False for a closed event: its chart is history
    # Hourly rain (mm in the hour ending at each time) of a rain station, NaN where not known;
    # None: no rain panel (tide events, station charts).
    rain_times: Sequence[datetime] | None = None
    rain_mm: Sequence[float] | None = None
    rain_station_name: str | None = None


def _finite(values: Sequence[float | None]) -> list[float]:
    """The finite numbers among `values`."""
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def _y_limits(data: HydrographData) -> tuple[float, float]:
    """A y range that shows both series and every reference line, with a margin."""
    values = _finite(data.observed_m) + _finite(data.predicted_m)
    values += _finite([*data.alarm_m, data.crest_m])
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    margin = max(0.1, 0.08 * (high - low))
    return low - margin, high + margin


def _time_locator(span: timedelta, width_px: int, zone: ZoneInfo) -> HourLocator | DayLocator:
    """Ticks at round local hours (or midnights), as many as the width has room for."""
    max_ticks = max(2, width_px // 150)  # a "dd/mm HH:MM" label needs ~110 px
    span_h = span.total_seconds() / 3600
    for step_h in (1, 2, 3, 6, 12):
        if span_h / step_h <= max_ticks:
            return HourLocator(byhour=range(0, 24, step_h), tz=zone)
    step_d = 1
    while span_h / (24 * step_d) > max_ticks:
        step_d += 1
    return DayLocator(interval=step_d, tz=zone)


def _decimal_comma(value: float, _pos: int) -> str:
    """Tick label with a Vietnamese decimal comma."""
    return f"{value:.2f}".replace(".", ",")


def _check_lengths(data: HydrographData) -> None:
    """Refuse series whose lengths differ from the number of times."""
    n = len(data.times)
    if len(data.observed_m) != n or len(data.predicted_m) != n:
        raise ValueError(
            f"hydrograph {data.station_name}: {n} times, {len(data.observed_m)} observed, "
            f"{len(data.predicted_m)} predicted values"
        )
    if (data.rain_mm is None) != (data.rain_times is None) or (
        data.rain_mm is not None and len(data.rain_mm) != len(data.rain_times)
    ):
        raise ValueError(f"hydrograph {data.station_name}: rain times and values differ")


def _new_figure(width_px: int, height_px: int, right_px: int = MARGIN_PX["right"]) -> Figure:
    """An empty figure of exactly `width_px` x `height_px` with fixed pixel margins."""
    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    # Fixed margins in pixels: a layout engine would double the render time.
    fig.subplots_adjust(
        left=MARGIN_PX["left"] / width_px,
        right=1 - right_px / width_px,
        top=1 - MARGIN_PX["top"] / height_px,
        bottom=MARGIN_PX["bottom"] / height_px,
    )
    return fig


def _plot_series(ax: Axes, times: list[datetime], data: HydrographData) -> None:
    """Draw the predicted and observed level lines."""
    ax.plot(
        times,
        [math.nan if v is None else v for v in data.predicted_m],
        color=PREDICTED_COLOUR,
        linestyle="--",
        linewidth=1.6,
        label="Dự báo",
    )
    ax.plot(
        times,
        [math.nan if v is None else v for v in data.observed_m],
        color=OBSERVED_COLOUR,
        linewidth=2.2,
        label="Quan trắc",
    )


def _plot_reference_lines(ax: Axes, data: HydrographData) -> None:
    """Draw the alarm levels and the road crest as horizontal lines."""
    for name, level_m, colour in zip(ALARM_NAMES, data.alarm_m, ALARM_COLOURS, strict=True):
        if level_m is not None:
            ax.axhline(level_m, color=colour, linewidth=1.6, label=f"{name} ({metres(level_m)})")
    if data.crest_m is not None:
        road = f": {data.crest_label}" if data.crest_label else ""
        ax.axhline(
            data.crest_m,
            color=CREST_COLOUR,
            linestyle="-.",
            linewidth=1.6,
            label=f"Cao độ mặt đường{road} ({metres(data.crest_m)})",
        )


def _span(times: list[datetime], data: HydrographData) -> tuple[datetime, datetime] | None:
    """The x range: the series, and now when it is marked."""
    if not times:
        return None
    if not data.show_now:
        return times[0], times[-1]
    return min(times[0], data.now), max(times[-1], data.now)


def _gaps(times: Sequence[datetime], known: Sequence[bool]) -> list[tuple[datetime, datetime]]:
    """(start, end) of each run of unknown samples between the first and last known one."""
    idx = [i for i, k in enumerate(known) if k]
    if not idx:
        return []
    runs, start = [], None
    for i in range(idx[0], idx[-1] + 1):
        if not known[i] and start is None:
            start = i - 1
        elif known[i] and start is not None:
            runs.append((times[start], times[i]))
            start = None
    return runs


def _plot_no_data(ax: Axes, times: list[datetime], data: HydrographData) -> None:
    """Grey bands where neither level is known (and rain hours nobody measured)."""
    known = [
        not (math.isnan(_nan(o)) and math.isnan(_nan(p)))
        for o, p in zip(data.observed_m, data.predicted_m, strict=True)
    ]
    bands = _gaps(times, known)
    if data.rain_mm is not None:
        for t, mm in zip(data.rain_times, data.rain_mm, strict=True):
            if math.isnan(_nan(mm)):
                bands.append((t - timedelta(hours=1), t))
    if not any(known):
        span = _span(times, data)
        if span is not None:
            bands.append(span)
        ax.text(0.5, 0.5, "Không có dữ liệu mực nước", transform=ax.transAxes, ha="center",
                va="center", fontsize=13, color="#666666")  # fmt: skip
    for i, (start, end) in enumerate(bands):
        label = "Không có dữ liệu" if i == 0 else None
        ax.axvspan(start, end, color=NO_DATA_COLOUR, zorder=0, linewidth=0, label=label)


def _nan(value: float | None) -> float:
    """None as NaN."""
    return math.nan if value is None else float(value)


def _plot_rain(ax: Axes, data: HydrographData) -> Axes | None:
    """Hourly rain bars on a second y axis (mm), below the level lines; None without rain."""
    if data.rain_mm is None:
        return None
    rain_ax = ax.twinx()
    ax.set_zorder(rain_ax.get_zorder() + 1)  # the level lines over the bars
    ax.patch.set_visible(False)
    values = [_nan(v) for v in data.rain_mm]
    known = [v for v in values if not math.isnan(v)]
    # A bar is the rain of the hour ending at its time: it spans that hour.
    starts = [t - timedelta(hours=1) for t in data.rain_times]
    name = f"Mưa trạm {data.rain_station_name}" if data.rain_station_name else "Mưa"
    heights = [0.0 if math.isnan(v) else v for v in values]
    rain_ax.bar(starts, heights, width=1 / 24, align="edge", color=RAIN_COLOUR, linewidth=0,
                label=f"{name} (mm/giờ)")  # fmt: skip
    rain_ax.set_ylim(0, max(max(known, default=0.0), 5.0) * RAIN_AXIS_SHARE)
    rain_ax.set_ylabel("Mưa (mm/giờ)", color=RAIN_COLOUR)
    rain_ax.tick_params(axis="y", colors=RAIN_COLOUR)
    rain_ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}".replace(".", ",")))
    return rain_ax


def _mark_now(ax: Axes, times: list[datetime], data: HydrographData) -> None:
    """Draw the "now" line with its label (only when marked) and fit the x range."""
    span = _span(times, data)
    if span is not None:
        ax.set_xlim(*span)
    if not data.show_now:
        return
    ax.axvline(data.now, color=NOW_COLOUR, linewidth=1.2, linestyle=":")
    # The label sits right of the line, or left of it when "now" is near the right edge.
    near_right_edge = False
    if span is not None:
        start, end = span
        near_right_edge = end > start and (data.now - start) / (end - start) > 0.9
    ax.annotate(
        "Bây giờ",
        xy=(data.now, 1.0),
        xycoords=("data", "axes fraction"),
        xytext=(-4 if near_right_edge else 4, -4),
        textcoords="offset points",
        ha="right" if near_right_edge else "left",
        va="top",
        color=NOW_COLOUR,
        fontsize=10,
    )


def _format_ticks(
    ax: Axes, times: list[datetime], data: HydrographData, zone: ZoneInfo, width_px: int
) -> None:
    """Set the y range, the local-time x ticks, decimal-comma y ticks and the grid."""
    ax.set_ylim(*_y_limits(data))

    span = _span(times, data)
    if span is not None:
        ax.xaxis.set_major_locator(_time_locator(span[1] - span[0], width_px, zone))
    ax.xaxis.set_major_formatter(DateFormatter("%d/%m %H:%M", tz=zone))
    ax.yaxis.set_major_formatter(FuncFormatter(_decimal_comma))
    ax.grid(True, color="#dddddd", linewidth=0.8)
    ax.set_axisbelow(True)


def _label_axes(ax: Axes, data: HydrographData, zone: ZoneInfo) -> None:
    """Set the title and axis labels, naming the local UTC offset."""
    offset = data.now.astimezone(zone).strftime("%z")  # "+0700"
    utc = f"UTC{offset[0]}{int(offset[1:3])}" + (f":{offset[3:]}" if offset[3:] != "00" else "")
    ax.set_title(f"Mực nước trạm {data.station_name}", fontsize=14, fontweight="bold")
    ax.set_ylabel("Mực nước (m, hệ cao độ quốc gia)")
    ax.set_xlabel(f"Thời gian (giờ địa phương, {utc})")


def _add_legend(fig: Figure, ax: Axes, rain_ax: Axes | None) -> None:
    """Put the legend below the plot, observed first, then rain."""
    handles, labels = ax.get_legend_handles_labels()
    pairs = dict(zip(labels, handles, strict=True))
    # Observed is drawn last (on top) but listed first.
    lines = ("Quan trắc", "Dự báo")
    order = [*lines, *(label for label in labels if label not in lines)]
    if rain_ax is not None:
        rain_handles, rain_labels = rain_ax.get_legend_handles_labels()
        pairs.update(zip(rain_labels, rain_handles, strict=True))
        order[2:2] = rain_labels
    fig.legend(
        [pairs[label] for label in order],
        order,
        loc="lower center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=4,
        fontsize=9,
        frameon=False,
    )


def render_hydrograph(
    data: HydrographData, zone: ZoneInfo, width_px: int = 1000, height_px: int = 560
) -> bytes:
    """Draw the hydrograph and return it as PNG bytes of exactly `width_px` x `height_px`."""
    _check_lengths(data)
    right_px = MARGIN_PX["right"] if data.rain_mm is None else RAIN_MARGIN_RIGHT_PX
    fig = _new_figure(width_px, height_px, right_px)
    canvas = FigureCanvasAgg(fig)
    try:
        ax = fig.add_subplot()
        times = list(data.times)
        rain_ax = _plot_rain(ax, data)
        _plot_series(ax, times, data)
        _plot_reference_lines(ax, data)
        _plot_no_data(ax, times, data)
        _mark_now(ax, times, data)
        _format_ticks(ax, times, data, zone, width_px)
        _label_axes(ax, data, zone)
        _add_legend(fig, ax, rain_ax)

        buffer = io.BytesIO()
        canvas.print_png(buffer)
        return buffer.getvalue()
    finally:
        # Not registered with pyplot, so nothing to close; drop the artists now anyway.
        fig.clear()
