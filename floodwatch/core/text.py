"""Vietnamese words and number/time formats for everything a person reads."""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

logger = logging.getLogger(__name__)

# --- the glossary: one Vietnamese word for each key the code stores or sends -------------
# Every vocabulary a person may read. Keys are the machine values (database, JSON, CSV of
# the CLI); the words are what pages, bot replies, CLI tables, exports and messages show.
# docs/glossary.md lists them (tests/test_glossary.py checks it matches).

STATUS_VI = {  # an event's status (core.events.EventStatus)
    "forecast": "dự báo",
    "flooded": "đang ngập",
    "receding": "đang rút",
    "closed": "đã kết thúc",
}
CAUSE_VI = {  # an event's cause (core.depth.CAUSE_NAMES)
    "tide": "triều cường",
    "rain": "mưa",
    "compound": "mưa kết hợp triều cường",
}
KIND_VI = {"observed": "quan trắc", "forecast": "dự báo"}  # event and reading kind
VARIABLE_VI = {"water_level": "mực nước", "rainfall": "mưa"}
ALARM_VI = {0: "dưới BĐ I", 1: "BĐ I", 2: "BĐ II", 3: "BĐ III"}
CHANGE_VI = {  # a change in an event's history (event_change.change)
    "opened": "Bắt đầu",
    "reflooded": "Ngập trở lại",
    "level_up": "Tăng mức",
    "level_down": "Giảm mức",
    "receding": "Nước rút",
    "closed": "Kết thúc",
    "forecast": "Dự báo",
    "forecast_updated": "Cập nhật dự báo",
    "confirmed": "Dự báo đã xảy ra",
    "cancelled": "Huỷ dự báo",
    "expired": "Hết thời gian dự báo",
    "removed": "Đoạn đường không còn trong dữ liệu",
    "reminder": "Nhắc lại",
    "doubtful_reading": "Số liệu nghi ngờ",
    "field_report": "Báo cáo hiện trường",
}
CLOSE_REASON_VI = {  # why an event closed (event.close_reason)
    "receded": "nước đã rút",
    "confirmed": "dự báo đã xảy ra",
    "cancelled": "dự báo đã huỷ",
    "expired": "hết thời gian dự báo",
    "removed": "đoạn đường không còn trong dữ liệu",
}
ALERT_VI = {  # an alert's kind (alert.kinds); segment alerts first, most severe first
    "onset": "bắt đầu ngập",
    "level_up": "ngập sâu thêm",
    "reminder": "vẫn đang ngập",
    "level_down": "nước giảm",
    "all_clear": "hết ngập",
    "forecast": "dự báo ngập",
    "forecast_update": "cập nhật dự báo",
    "forecast_cancelled": "huỷ dự báo ngập",
    "segment_removed": "bỏ đoạn đường",
    "daily_bulletin": "bản tin hằng ngày",
    "no_data": "mất tín hiệu",
    "data_back": "có tín hiệu trở lại",
    "heartbeat": "hệ thống ngừng đánh giá",
    "chat_broken": "nhóm Telegram không nhận được",
    "chat_migrated": "nhóm Telegram đổi mã",
    "digest": "tổng hợp cho trực ban",
}
DELIVERY_VI = {  # an alert's or a delivery's status (alert.status, delivery.status)
    "pending": "chờ gửi",
    "sent": "đã gửi",
    "console": "in ra màn hình",
    "broken": "nhóm không nhận được",
    "failed": "gửi lỗi",
    "muted": "tạm tắt",
}
SOURCE_STATUS_VI = {  # a source's health (core.health), and an input's
    "ok": "bình thường",
    "degraded": "chập chờn",
    "failing": "đang lỗi",
    "stale": "mất tín hiệu",
    "never": "chưa lấy lần nào",
}
NOTE_KIND_VI = {  # an operator's note on an event (event_note.kind)
    "note": "Ghi chú",
    "ack": "Đã xác nhận",
    "false_alarm": "Đánh dấu báo nhầm",
    "false_alarm_cleared": "Bỏ đánh dấu báo nhầm",
}
TARGET_VI = {"segment": "đoạn đường", "unit": "đơn vị"}  # what a silence mutes
SKILL_VI = {  # a backtest's verdict on an observed flood or a warning (core.skill)
    "hit": "báo trúng",
    "miss": "bỏ sót",
    "verified": "đã xảy ra",
    "false_alarm": "báo sai",
    "unverifiable": "không kiểm chứng được (thiếu số liệu đo)",
    "pending": "chưa đến lúc kiểm chứng",
}
NO_DATA_VI = "không có dữ liệu"  # a value nobody knows (never 0, never dry)
STALE_VI = SOURCE_STATUS_VI["stale"]  # a station gone quiet
DRILL_VI = "DIỄN TẬP"  # a drill: the first words of every message it sends

VOCABULARIES: dict[str, dict] = {
    "status": STATUS_VI,
    "cause": CAUSE_VI,
    "kind": KIND_VI,
    "variable": VARIABLE_VI,
    "alarm": ALARM_VI,
    "change": CHANGE_VI,
    "close_reason": CLOSE_REASON_VI,
    "alert": ALERT_VI,
    "delivery": DELIVERY_VI,
    "source_status": SOURCE_STATUS_VI,
    "note": NOTE_KIND_VI,
    "target": TARGET_VI,
    "skill": SKILL_VI,
}
# What a data credit is for (`Credit.subject`), as a person reads it.
CREDIT_VI = {"weather": "Dữ liệu thời tiết", "tide": "Hằng số thủy triều"}
# Licences that CC BY asks us to mark as changed: floodwatch turns the data into depths.
CHANGED_VI = "đã qua xử lý"
PUBLIC_DOMAIN_VI = "phạm vi công cộng"


@dataclass(frozen=True)
class Credit:
    """Whose data a surface shows and under which licence (a source's terms ask for it)."""

    subject: str  # a CREDIT_VI key: weather, tide
    provider: str  # "Open-Meteo.com", or a citation
    licence: str  # "CC BY 4.0"
    url: str = ""  # linked where the surface can link (web, Telegram)

    @property
    def heading(self) -> str:
        """`Dữ liệu thời tiết`."""
        return CREDIT_VI.get(self.subject, self.subject)

    @property
    def licence_vi(self) -> str:
        """The licence as shown: its name, "public domain" in Vietnamese."""
        return PUBLIC_DOMAIN_VI if self.licence.lower() == "public domain" else self.licence

    def line(self) -> str:
        """`Dữ liệu thời tiết: Open-Meteo.com (CC BY 4.0), đã qua xử lý`."""
        return f"{self.heading}: {self.provider} ({self.licence_vi}), {CHANGED_VI}"


# --- colours of depth levels: the one rule for messages and the web map ------------------
# Depth levels run from yellow to red, the deepest configured level always red
# (Decision 18/2021's risk colours, DESIGN.md, grow the same way: yellow, orange, red).
# With N levels, level k takes tone round((k - 1) * 2 / (N - 1)) of LEVEL_TONES (halves up):
#   1 level: 🔴   2: 🟡 🔴   3: 🟡 🟠 🔴   4: 🟡 🟠 🟠 🔴   5: 🟡 🟠 🟠 🔴 🔴
#   6: 🟡 🟡 🟠 🟠 🔴 🔴 (and so on to 10); the level's number says which one it is.
# Water gone (an all-clear, a cancelled forecast, a road below level 1) is green.
LEVEL_TONES = ("yellow", "orange", "red")
GOOD_TONE = "green"
TONE_MARK = {"green": "🟢", "yellow": "🟡", "orange": "🟠", "red": "🔴"}


def level_tone(level: int, levels: int) -> str:
    """The colour of depth `level` of `levels` configured ones: green for 0, red for the deepest."""
    if level <= 0:
        return GOOD_TONE
    if levels <= 1 or level >= levels:
        return LEVEL_TONES[-1]
    top = len(LEVEL_TONES) - 1
    # Halves round up (int(x + 0.5)), never to the even neighbour as round() would.
    return LEVEL_TONES[int((level - 1) * top / (levels - 1) + 0.5)]


def level_mark(level: int, levels: int) -> str:
    """The coloured circle of depth `level` of `levels` (🟡 … 🔴; 🟢 for 0)."""
    return TONE_MARK[level_tone(level, levels)]


@lru_cache(maxsize=256)
def _unknown_key(vocabulary: str, key: object) -> None:
    """Log a key without a Vietnamese word, once per key (lru_cache remembers)."""
    logger.warning("text: no Vietnamese word for %s %r; shown as is", vocabulary, key)


def label(vocabulary: str, key: object, empty: str = "—") -> str:
    """The Vietnamese word of a key of a vocabulary (`label("status", "closed")`).

    None or "" is `empty`; a key the glossary lacks shows as itself and is logged once
    (tests/test_glossary.py checks every key the code uses has a word).
    """
    if key is None or key == "":
        return empty
    words = VOCABULARIES[vocabulary]
    word = words.get(key)
    if word is None:
        _unknown_key(vocabulary, key)
        return str(key)
    return word


def labels(vocabulary: str, keys, sep: str = ", ") -> str:
    """Several keys of one vocabulary as Vietnamese words joined by `sep`."""
    return sep.join(label(vocabulary, key) for key in keys) or "—"


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
    """Text for forgiving matching: no diacritics (đ → d), case-folded, single spaces.

    "Đường  Đề Thám" and "duong de tham" fold alike; so do composed and decomposed forms.
    """
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.casefold().split())
