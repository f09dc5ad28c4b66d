"""Vietnamese words and number/time formats for everything a person reads."""

from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

CAUSE_VI = {
    "tide": "triều cường",
    "rain": "mưa",
    "compound": "mưa kết hợp triều cường",
}
STATUS_VI = {
    "forecast": "dự báo",
    "flooded": "đang ngập",
    "receding": "đang rút",
    "closed": "đã kết thúc",
}
KIND_VI = {"observed": "quan trắc", "forecast": "dự báo"}
VARIABLE_VI = {"water_level": "mực nước", "rainfall": "mưa"}
# Risk-level colours of Decision 18/2021 (DESIGN.md): 1 light blue, 2 light yellow,
# 3 orange, 4 red, 5 purple.
LEVEL_MARK = {0: "🟢", 1: "🔵", 2: "🟡", 3: "🟠", 4: "🔴", 5: "🟣"}
ALARM_VI = {0: "dưới BĐ I", 1: "BĐ I", 2: "BĐ II", 3: "BĐ III"}


def metres(value: float | None, digits: int = 2) -> str:
    """A length in metres with a Vietnamese decimal comma: `0,32 m`."""
    if value is None:
        return "—"
    return f"{value:.{digits}f}".replace(".", ",") + " m"


def centimetres(value_m: float | None) -> str:
    """A depth in whole centimetres: `32 cm`."""
    return "—" if value_m is None else f"{round(value_m * 100):d} cm"


def local_time(when: datetime | None, zone: ZoneInfo, with_date: bool = True) -> str:
    """A time in the display zone as `dd/mm/yyyy HH:MM` (or `HH:MM`)."""
    if when is None:
        return "—"
    local = when.astimezone(zone)
    return local.strftime("%d/%m/%Y %H:%M" if with_date else "%H:%M")


def duration(delta: timedelta) -> str:
    """A lead time or duration in hours and minutes: `5 giờ 30 phút`."""
    minutes = max(0, round(delta.total_seconds() / 60))
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours} giờ {minutes} phút"
    return f"{hours} giờ" if hours else f"{minutes} phút"


def fold(text: str) -> str:
    """Lower-case text without diacritics (đ → d), for forgiving name matching."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.lower().split())
