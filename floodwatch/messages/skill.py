"""A backtest for people: the Vietnamese summary table and the skill chart (PNG).

Scores nobody can compute (no flood, no warning) are "—", never 0 %.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import timedelta
from zoneinfo import ZoneInfo

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import DateFormatter
from matplotlib.figure import Figure

from floodwatch.core.skill import FALSE_ALARM, HIT, MISS, Scores, Skill
from floodwatch.core.text import centimetres, duration, local_time

HEADERS = ("Báo trúng", "Bỏ sót", "Báo sai", "POD", "FAR", "CSI", "Báo trước: trung vị (ít nhất)")
EXPLAIN = (
    "POD: tỉ lệ trận ngập được báo trước. FAR: tỉ lệ cảnh báo không xảy ra. "
    "CSI: báo trúng / (trúng + sót + sai). «—»: chưa đủ trận để tính."
)


def percent(value: float | None) -> str:
    """A score as a whole percentage, or "—" when it cannot be computed."""
    return "—" if value is None else f"{round(value * 100):d}%"


def hours(value_h: float | None) -> str:
    """A lead time in hours and minutes, or "—"."""
    return "—" if value_h is None else duration(timedelta(hours=value_h))


def signed(value: float) -> str:
    """A rounded error with its sign, and no sign on zero: `+20`, `-7`, `0`."""
    rounded = round(value)
    return f"{rounded:+d}" if rounded else "0"


def level_title(level: int, thresholds_m: Sequence[float]) -> str:
    """`Mức 2 (≥ 30 cm)`."""
    return f"Mức {level} (≥ {centimetres(thresholds_m[level - 1])})"


def score_cells(s: Scores) -> list[str]:
    """The cells of one row of the table, in HEADERS order."""
    lead = "—" if s.median_lead_h is None else f"{hours(s.median_lead_h)} ({hours(s.min_lead_h)})"
    return [
        str(s.hits), str(s.misses), str(s.false_alarms),
        percent(s.pod), percent(s.far), percent(s.csi), lead,
    ]  # fmt: skip


def _table(title: str, rows: list[tuple[str, list[str]]]) -> list[str]:
    """Rows under a header line, columns padded to their widest cell."""
    cells = [[title, *HEADERS]] + [[name, *values] for name, values in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return [
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                  enumerate(zip(row, widths, strict=True))).rstrip()
        for row in cells
    ]  # fmt: skip


def summary(
    skill: Skill,
    thresholds_m: Sequence[float],
    unit_names: Mapping[str, str],
    zone: ZoneInfo,
) -> str:
    """The whole summary: per level, per unit at level 1, the tide timing errors."""
    rules = skill.rules
    window = hours(rules.window.total_seconds() / 3600)
    lines = [
        f"KIỂM ĐỊNH CẢNH BÁO NGẬP: {local_time(rules.start, zone)} – {local_time(rules.end, zone)}",
        f"Báo trúng: dự báo có hiệu lực ngay trước lúc ngập nói đúng mức đó, lệch không quá "
        f"± {window}.",
        "",
    ]
    rows = []
    for level in range(1, rules.levels + 1):
        s = skill.scores(level).get("", Scores())
        rows.append((level_title(level, thresholds_m), score_cells(s)))
    lines += _table("Mức ngập", rows)
    level1 = skill.scores(1).get("", Scores())
    lines += [
        "",
        f"Không kiểm chứng được (thiếu số liệu đo): {level1.unverifiable} cảnh báo. "
        f"Chưa đến lúc kiểm chứng: {level1.pending}.",
        "",
    ]
    per_unit = skill.scores(1, "unit")
    if per_unit:
        unit_rows = [(unit_names.get(u, u), score_cells(s)) for u, s in per_unit.items()]
        lines += _table(f"Theo đơn vị, {level_title(1, thresholds_m).lower()}", unit_rows) + [""]
    lines += timing_lines(skill) + [EXPLAIN]
    return "\n".join(lines)


def timing_lines(skill: Skill) -> list[str]:
    """The timing and peak errors of tide-driven forecasts, by lead time."""
    bands = [row for row in skill.timing_bands() if row[1]]
    if not bands:
        return ["Sai số dự báo triều: chưa có lần báo trúng nào do triều để so.", ""]
    lines = ["Sai số dự báo do triều (các lần báo trúng mức 1; dương: dự báo muộn hơn, sâu hơn):"]
    for label, count, onset_h, peak_m in bands:
        onset = "—" if onset_h is None else f"{signed(onset_h * 60)} phút"
        peak = "—" if peak_m is None else f"{signed(peak_m * 100)} cm"
        lines.append(
            f"  báo trước {label.replace(' h', ' giờ')}: {count} dự báo, lệch giờ bắt đầu "
            f"ngập {onset}, lệch độ sâu đỉnh {peak}"
        )
    return lines + [""]


def chart(skill: Skill, zone: ZoneInfo) -> bytes:
    """Two panels: the share of floods warned at least x hours ahead (per level), and hits,
    misses and false alarms per week at level 1. PNG bytes."""
    figure = Figure(figsize=(9, 7), dpi=100, layout="constrained")
    lead_ax, week_ax = figure.subplots(2, 1)
    longest = max((o.lead.total_seconds() / 3600 for o in skill.outcomes if o.lead), default=24)
    steps = [x / 2 for x in range(int(longest * 2) + 2)]
    for level in range(1, skill.rules.levels + 1):
        floods = [o for o in skill.outcomes if o.level == level]
        if not floods:
            continue
        leads = [o.lead.total_seconds() / 3600 if o.result == HIT else None for o in floods]
        share = [sum(1 for h in leads if h is not None and h >= x) / len(floods) for x in steps]
        lead_ax.step(steps, share, where="post", label=f"Mức {level} ({len(floods)} trận)")
    lead_ax.set(
        title="Tỉ lệ trận ngập được báo trước ít nhất x giờ",
        xlabel="Báo trước (giờ)", ylabel="Tỉ lệ", ylim=(0, 1.05),
    )  # fmt: skip
    lead_ax.grid(alpha=0.3)
    if lead_ax.get_legend_handles_labels()[0]:
        lead_ax.legend(loc="upper right")
    _weeks(week_ax, skill, zone)
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


def _weeks(ax, skill: Skill, zone: ZoneInfo) -> None:
    """Stacked weekly bars of hits, misses and false alarms at level 1."""
    counts: dict[str, Counter] = {HIT: Counter(), MISS: Counter(), FALSE_ALARM: Counter()}
    for o in skill.outcomes:
        if o.level == 1:
            counts[o.result][_monday(o.observed_at, zone)] += 1
    for w in skill.warnings:
        if w.level == 1 and w.verdict == FALSE_ALARM:
            counts[FALSE_ALARM][_monday(w.onset_at, zone)] += 1
    weeks = sorted(set().union(*counts.values()))
    bottom = [0] * len(weeks)
    for key, colour, name in (
        (HIT, "#2e7d32", "Báo trúng"), (MISS, "#c62828", "Bỏ sót"),
        (FALSE_ALARM, "#ef6c00", "Báo sai"),
    ):  # fmt: skip
        values = [counts[key][w] for w in weeks]
        ax.bar(weeks, values, width=5, bottom=bottom, color=colour, label=name, align="edge")
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set(title="Mức 1 theo tuần", ylabel="Số trận / cảnh báo")
    ax.xaxis.set_major_formatter(DateFormatter("%d/%m", tz=zone))
    ax.yaxis.get_major_locator().set_params(integer=True)
    if not weeks:
        ax.text(0.5, 0.5, "Không có trận ngập hay cảnh báo nào", ha="center",
                transform=ax.transAxes)  # fmt: skip
    ax.legend(loc="upper right")


def _monday(when, zone: ZoneInfo):
    """The local Monday 00:00 of a time's week."""
    local = when.astimezone(zone)
    return (local - timedelta(days=local.weekday())).replace(hour=0, minute=0, second=0)
