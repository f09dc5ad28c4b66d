"""Compose alerts: one Vietnamese message per unit per cycle, most severe first."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from floodwatch.events import Change
from floodwatch.geo import Geodata
from floodwatch.text import CAUSE_VI, centimetres, duration, local_time

# Risk-level colours of Decision 18/2021 (DESIGN.md), by depth level.
LEVEL_MARK = {0: "🟢", 1: "🔵", 2: "🟡", 3: "🟠", 4: "🔴"}

HEADLINE = {
    "onset": "BẮT ĐẦU NGẬP",
    "level_up": "NGẬP SÂU THÊM",
    "level_down": "NƯỚC GIẢM",
    "all_clear": "HẾT NGẬP",
    "forecast": "DỰ BÁO NGẬP",
    "forecast_update": "CẬP NHẬT DỰ BÁO",
    "forecast_cancelled": "HUỶ DỰ BÁO NGẬP",
}
# Order of kinds in a message: what needs action first.
SEVERITY = {
    "onset": 0,
    "level_up": 1,
    "forecast": 2,
    "forecast_update": 3,
    "level_down": 4,
    "forecast_cancelled": 5,
    "all_clear": 6,
}


def _line(change: Change, geodata: Geodata, zone: ZoneInfo, level_names: Sequence[str]) -> str:
    """One line of a message for one segment."""
    ev = change.event
    segment = geodata.segment(ev.segment_id)
    road = f"{segment.name} ({segment.ward})" if segment else ev.segment_id
    mark = LEVEL_MARK.get(ev.max_level if change.alert == "all_clear" else ev.level, "")
    cause = CAUSE_VI.get(ev.cause or "", "")
    level_name = level_names[ev.level - 1] if 1 <= ev.level <= len(level_names) else ""
    kind = change.alert
    if kind in ("forecast", "forecast_update"):
        lead = duration(ev.expected_onset_at - change.at)
        return (
            f"{mark} {road}: dự kiến ngập từ {local_time(ev.expected_onset_at, zone)} "
            f"(còn {lead}), sâu nhất {centimetres(ev.peak_depth_m)} lúc "
            f"{local_time(ev.peak_at, zone, with_date=False)}, do {cause}. {level_name}"
        ).rstrip()
    if kind == "forecast_cancelled":
        return f"{mark} {road}: không còn dự báo ngập."
    if kind == "all_clear":
        return (
            f"{mark} {road}: đã hết ngập (sâu nhất {centimetres(ev.peak_depth_m)} "
            f"lúc {local_time(ev.peak_at, zone)})."
        )
    return (
        f"{mark} {road}: đang ngập {centimetres(ev.depth_m)} (mức {ev.level}), "
        f"do {cause}. {level_name}"
    ).rstrip()


def compose(
    changes: Sequence[Change],
    geodata: Geodata,
    unit_names: dict[str, str],
    zone: ZoneInfo,
    level_names: Sequence[str],
    at: datetime,
) -> list[dict]:
    """Group alert-carrying changes by unit into one message each."""
    by_unit: dict[str, list[Change]] = defaultdict(list)
    for change in changes:
        if change.alert:
            by_unit[change.event.unit].append(change)
    messages = []
    for unit, unit_changes in sorted(by_unit.items()):
        unit_changes.sort(key=lambda c: (SEVERITY[c.alert], -c.event.level, c.event.segment_id))
        lines = [f"⚠️ CẢNH BÁO NGẬP ĐƯỜNG — {unit_names.get(unit, unit)}"]
        lines.append(f"Thời điểm: {local_time(at, zone)}")
        current = None
        for change in unit_changes:
            if change.alert != current:
                current = change.alert
                lines.append(f"\n{HEADLINE[current]}:")
            lines.append(_line(change, geodata, zone, level_names))
        messages.append(
            {
                "unit": unit,
                "kinds": sorted({c.alert for c in unit_changes}, key=SEVERITY.get),
                "changes": unit_changes,
                "body": "\n".join(lines),
            }
        )
    return messages
