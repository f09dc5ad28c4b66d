"""A backtest as files: the XLSX workbook for people and the JSON document for scripts.

JSON keeps machine keys (`hit`, `false_alarm`), UTC times with an offset and
`null` for a score nobody can compute; the workbook speaks Vietnamese, in local
time, with formula-like text kept as text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from floodwatch.core.geo import Geodata
from floodwatch.core.skill import Scores, Skill
from floodwatch.core.text import label
from floodwatch.exports.tables import _local, _save_workbook, _Sheet
from floodwatch.messages.skill import EXPLAIN, level_title

SCORE_HEADERS = (
    "Mức", "Phạm vi", "Tên", "Báo trúng", "Bỏ sót", "Báo sai", "Không kiểm chứng được",
    "Chưa đến lúc kiểm chứng", "POD", "FAR", "CSI", "Báo trước trung vị (giờ)",
    "Báo trước ít nhất (giờ)",
)  # fmt: skip
SCOPE_VI = {None: "Toàn bộ", "unit": "Đơn vị", "segment_id": "Đoạn đường"}


def score_record(s: Scores) -> dict[str, object]:
    """One group's counts and scores (None where they cannot be computed)."""
    return {
        "hits": s.hits, "misses": s.misses, "false_alarms": s.false_alarms,
        "unverifiable": s.unverifiable, "pending": s.pending,
        "pod": _round(s.pod), "far": _round(s.far), "csi": _round(s.csi),
        "lead_hours": {"median": s.median_lead_h, "min": s.min_lead_h, "all": list(s.leads_h)},
    }  # fmt: skip


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def skill_document(skill: Skill, thresholds_m: Sequence[float]) -> dict[str, object]:
    """Everything a script needs: scores per level overall, per unit and per segment;
    each observed flood, each warning, the tide timing errors."""
    rules = skill.rules
    levels = []
    for level in range(1, rules.levels + 1):
        levels.append(
            {
                "level": level,
                "threshold_m": thresholds_m[level - 1],
                **score_record(skill.scores(level).get("", Scores())),
                "units": {k: score_record(v) for k, v in skill.scores(level, "unit").items()},
                "segments": {
                    k: score_record(v) for k, v in skill.scores(level, "segment_id").items()
                },
            }
        )
    return {
        "period": {"start": _iso(rules.start), "end": _iso(rules.end)},
        "window_hours": rules.window.total_seconds() / 3600,
        "levels": levels,
        "floods": [
            {
                "segment": o.segment_id, "unit": o.unit, "level": o.level, "event_id": o.event_id,
                "observed_at": _iso(o.observed_at), "result": o.result,
                "first_warning_at": _iso(o.first_warning_at),
                "lead_hours": None if o.lead is None else o.lead.total_seconds() / 3600,
            }
            for o in skill.outcomes
        ],
        "warnings": [
            {
                "segment": w.segment_id, "unit": w.unit, "level": w.level,
                "first_issued_at": _iso(w.first_issued_at), "onset_at": _iso(w.onset_at),
                "end_at": _iso(w.end_at), "verdict": w.verdict,
            }
            for w in skill.warnings
        ],
        "tide_timing": [
            {"lead_band": band, "forecasts": n, "mean_onset_error_hours": onset,
             "mean_peak_error_m": None if peak is None else round(peak, 4)}
            for band, n, onset, peak in skill.timing_bands()
        ],
    }  # fmt: skip


def write_skill_xlsx(
    skill: Skill,
    out,
    *,
    thresholds_m: Sequence[float],
    geodata: Geodata,
    unit_names: Mapping[str, str],
    zone: ZoneInfo,
) -> None:
    """Scores, each flood, each warning, tide timing errors and notes, as five sheets."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    names = {s.id: s.name for s in geodata.segments}
    _scores_sheet(workbook, skill, thresholds_m, {**unit_names, **names})
    floods = _Sheet(
        workbook, "Từng trận ngập",
        ("Mức", "Mã đoạn", "Tên đường", "Đơn vị", "Mã đợt ngập", "Ngập tới mức này lúc",
         "Kết quả", "Cảnh báo đầu tiên lúc", "Báo trước (giờ)"),
        (None, None, None, None, None, "dd/mm/yyyy hh:mm", None, "dd/mm/yyyy hh:mm", "0.0"),
        (8, 22, 28, 26, 12, 18, 14, 20, 14),
    )  # fmt: skip
    for o in skill.outcomes:
        floods.append([
            o.level, o.segment_id, names.get(o.segment_id, ""), unit_names.get(o.unit, o.unit),
            o.event_id, _local(o.observed_at, zone), label("skill", o.result),
            _local(o.first_warning_at, zone),
            None if o.lead is None else o.lead.total_seconds() / 3600,
        ])  # fmt: skip
    floods.finish()
    warnings = _Sheet(
        workbook, "Từng cảnh báo",
        ("Mức", "Mã đoạn", "Tên đường", "Đơn vị", "Phát lúc", "Dự báo ngập từ", "Đến",
         "Kết quả"),
        (None, None, None, None, "dd/mm/yyyy hh:mm", "dd/mm/yyyy hh:mm", "dd/mm/yyyy hh:mm",
         None),
        (8, 22, 28, 26, 18, 18, 18, 34),
    )  # fmt: skip
    for w in skill.warnings:
        warnings.append([
            w.level, w.segment_id, names.get(w.segment_id, ""), unit_names.get(w.unit, w.unit),
            _local(w.first_issued_at, zone), _local(w.onset_at, zone), _local(w.end_at, zone),
            label("skill", w.verdict),
        ])  # fmt: skip
    warnings.finish()
    _timing_and_notes(workbook, skill, zone)
    _save_workbook(workbook, out)


def _scores_sheet(workbook, skill: Skill, thresholds_m, names: Mapping[str, str]) -> None:
    """One row per level and scope (overall, each unit, each segment)."""
    sheet = _Sheet(
        workbook, "Tổng hợp", SCORE_HEADERS,
        (None, None, None, "0", "0", "0", "0", "0", "0%", "0%", "0%", "0.0", "0.0"),
        (16, 12, 30, 11, 9, 9, 14, 14, 8, 8, 8, 14, 14),
    )  # fmt: skip
    for level in range(1, skill.rules.levels + 1):
        for key in (None, "unit", "segment_id"):
            for group, s in skill.scores(level, key).items():
                sheet.append([
                    level_title(level, thresholds_m), SCOPE_VI[key], names.get(group, group),
                    s.hits, s.misses, s.false_alarms, s.unverifiable, s.pending,
                    s.pod, s.far, s.csi, s.median_lead_h, s.min_lead_h,
                ])  # fmt: skip
    sheet.finish()


def _timing_and_notes(workbook, skill: Skill, zone: ZoneInfo) -> None:
    """The tide timing errors by lead band, and the notes sheet."""
    timing = _Sheet(
        workbook, "Sai số dự báo triều",
        ("Báo trước", "Số dự báo", "Lệch giờ bắt đầu ngập, TB (phút)", "Lệch độ sâu đỉnh, TB (cm)"),
        (None, "0", "0", "0"),
        (14, 11, 30, 26),
    )  # fmt: skip
    for band, n, onset_h, peak_m in skill.timing_bands():
        timing.append([
            band.replace(" h", " giờ"), n,
            None if onset_h is None else onset_h * 60, None if peak_m is None else peak_m * 100,
        ])  # fmt: skip
    timing.finish()
    rules = skill.rules
    notes = _Sheet(workbook, "Ghi chú", ("Mục", "Nội dung"), (None, None), (26, 110))
    for item, text in (
        ("Thời kỳ", f"{_local(rules.start, zone):%d/%m/%Y %H:%M} – "
                    f"{_local(rules.end, zone):%d/%m/%Y %H:%M} (giờ địa phương)"),
        ("Dung sai thời gian", f"± {rules.window.total_seconds() / 3600:g} giờ"),
        ("Cách tính", EXPLAIN),
        ("Báo trúng", "dự báo có hiệu lực ngay trước lúc đường ngập tới mức đó đã nói mức đó "
                      "trở lên, lúc ngập nằm trong khoảng dự báo (cộng trừ dung sai)"),
        ("Báo trước", "từ lần phát đầu tiên của chuỗi dự báo liên tục đã nói trúng, tới lúc "
                      "ngập"),
        ("Không kiểm chứng được", "trạm đo của đoạn đường mất số liệu trong khoảng dự báo: "
                                  "không tính là báo sai"),
        ("Tài liệu", "docs/skill.md"),
    ):  # fmt: skip
        notes.append((item, text))
