"""A drill's words: the "DIỄN TẬP" mark every drill message starts with, and the
operators' summary `floodwatch drill` prints. Pure: data in, text out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from floodwatch.core.text import DRILL_VI, label, local_time
from floodwatch.messages.bulletin import TELEGRAM_LIMIT, split_html

# The first line of every drill message, so nobody takes it for a real alert, even in a
# notification that shows one line.
MARK_TEXT = f"📣 {DRILL_VI} — không phải tình huống thật"
MARK_HTML = f"📣 <b>{DRILL_VI}</b> — không phải tình huống thật"
# Room the mark takes in a part (UTF-16 units: the emoji counts two), with its line break.
MARK_ROOM = len(MARK_HTML.encode("utf-16-le")) // 2 + 1


def mark_html(part: str) -> str:
    """A Telegram HTML part with the drill mark as its first line."""
    return f"{MARK_HTML}\n{part}"


def mark_plain(text: str) -> str:
    """A plain-text message with the drill mark as its first line."""
    return f"{MARK_TEXT}\n{text}"


def mark_caption(caption: str) -> str:
    """A picture's caption, marked at its start."""
    return f"📣 {DRILL_VI} — {caption}"


def drill_parts(body: str) -> list[str]:
    """A message's Telegram parts, each within the limit and each marked."""
    return [mark_html(part) for part in split_html(body, TELEGRAM_LIMIT - MARK_ROOM)]


@dataclass(frozen=True)
class ChatLine:
    """What one chat received in a drill."""

    chat_id: int
    owner: str  # the unit(s) whose chat it is, or the operators
    messages: int = 0  # deliveries (one per alert)
    parts: int = 0  # Telegram messages: text parts and pictures
    delivered: int = 0
    failed: int = 0  # failed or broken: given up
    pending: int = 0
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class AckLine:
    """One drill alert that asked for "Đã nhận", and who pressed it when."""

    alert_id: int
    unit: str
    kinds: tuple[str, ...]
    at: datetime  # the alert's simulated time
    first_sent_at: datetime | None  # real time of its first delivery
    ack_by: str | None = None
    ack_at: datetime | None = None  # real time

    @property
    def waited(self) -> timedelta | None:
        """Time from delivery to acknowledgement."""
        if self.ack_at is None or self.first_sent_at is None:
            return None
        return max(timedelta(0), self.ack_at - self.first_sent_at)


@dataclass(frozen=True)
class DrillReport:
    """Everything the operators' summary says."""

    csv_name: str
    database: str
    telegram: bool
    started_at: datetime  # real time
    finished_at: datetime
    first_at: datetime | None  # the simulated period
    last_at: datetime | None
    cycles: int
    events: int
    alerts_by_unit: Sequence[tuple[str, int, bool]]  # (unit name, alerts, has no chat of its own)
    chats: Sequence[ChatLine]
    acks: Sequence[AckLine]
    wait_ack_minutes: float | None = None
    escalations: int = 0
    rejected: int = 0
    notes: Sequence[str] = field(default_factory=tuple)


def _seconds(delta: timedelta) -> str:
    """A short wait in minutes and seconds: `2 phút 05 giây`, `40 giây`."""
    seconds = max(0, round(delta.total_seconds()))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} giờ {minutes:02d} phút"
    return f"{minutes} phút {seconds:02d} giây" if minutes else f"{seconds} giây"


def _head(report: DrillReport, zone: ZoneInfo) -> list[str]:
    """The summary's first lines: what was replayed, where, how delivered."""
    period = (
        f" — dữ liệu từ {local_time(report.first_at, zone)} đến {local_time(report.last_at, zone)}"
        if report.first_at and report.last_at
        else ""
    )
    channel = (
        "Telegram, qua các nhóm trong cấu hình"
        if report.telegram
        else "in ra màn hình (không có FLOODWATCH_TELEGRAM_TOKEN)"
    )
    lines = [
        f"TỔNG KẾT {DRILL_VI}",
        f"Tệp: {report.csv_name}{period}",
        f"Cơ sở dữ liệu {DRILL_VI.lower()}: {report.database}",
        f"Gửi bằng: {channel}",
        f"Từ {local_time(report.started_at, zone)} đến {local_time(report.finished_at, zone)} "
        f"({_seconds(report.finished_at - report.started_at)})",
        f"{report.cycles} chu kỳ đánh giá, {report.events} sự kiện ngập, "
        f"{sum(n for _, n, _ in report.alerts_by_unit)} tin"
        + (f", {report.escalations} tin chuyển cấp" if report.escalations else "")
        + (f"; {report.rejected} dòng dữ liệu bị loại" if report.rejected else ""),
    ]
    return lines


def _units(report: DrillReport) -> list[str]:
    """Alerts per unit, and the units no chat received."""
    lines = ["", "Tin theo đơn vị:"]
    for name, count, unreached in report.alerts_by_unit:
        lost = " — đơn vị chưa có nhóm Telegram riêng (telegram_chats)" if unreached else ""
        lines.append(f"  {name}: {count} tin{lost}")
    return lines


def _chats(report: DrillReport) -> list[str]:
    """One row per chat: messages, parts, delivered, failed, waiting."""
    if not report.chats:
        return ["", "Không có nhóm Telegram nào trong cấu hình: không tin nào được gửi đi."]
    owner_w = max(len("Đơn vị"), *(len(c.owner) for c in report.chats))
    lines = [
        "",
        "Gửi tới từng nhóm:",
        f"  {'Nhóm':>15}  {'Đơn vị':<{owner_w}}  {'Tin':>4}  {'Phần':>4}  {'Đã gửi':>6}  "
        f"{'Lỗi':>4}  {'Chờ':>4}",
    ]
    for c in report.chats:
        lines.append(
            f"  {c.chat_id:>15}  {c.owner:<{owner_w}}  {c.messages:>4}  {c.parts:>4}  "
            f"{c.delivered:>6}  {c.failed:>4}  {c.pending:>4}"
        )
    for c in report.chats:
        for error in c.errors:
            lines.append(f"  Lỗi nhóm {c.chat_id}: {error}")
    total = sum(c.messages for c in report.chats)
    delivered = sum(c.delivered for c in report.chats)
    lines.append(f"  Tổng: {delivered}/{total} lượt gửi thành công, "
                 f"{sum(c.parts for c in report.chats)} tin nhắn Telegram")  # fmt: skip
    return lines


def _acks(report: DrillReport, zone: ZoneInfo) -> list[str]:
    """Who pressed "Đã nhận" on which alert, and how long it took."""
    if not report.acks:
        return ["", 'Xác nhận "Đã nhận": không có tin nào cần xác nhận.']
    reached = [a for a in report.acks if a.first_sent_at is not None]
    taken = [a for a in reached if a.ack_at is not None]
    unreached = len(report.acks) - len(reached)
    head = f'Xác nhận "Đã nhận": {len(taken)}/{len(reached)} tin cần xác nhận đã tới nhóm'
    if unreached:
        head += f"; {unreached} tin cần xác nhận không tới nhóm nào"
    lines = ["", head]
    if not report.telegram:
        return [*lines, "  (chỉ ghi nhận được qua Telegram)"]
    if report.wait_ack_minutes is None:
        return [*lines, "  (không chờ xác nhận; dùng --wait-ack PHÚT để chờ)"]
    lines.append(f"  (đã chờ tối đa {report.wait_ack_minutes:g} phút)")
    for a in reached:
        kind = label("alert", a.kinds[0])
        what = f"tin #{a.alert_id} {a.unit} ({kind}, {local_time(a.at, zone)})"
        if a.ack_at is None:
            lines.append(f"  {what}: chưa có ai xác nhận")
        else:
            waited = f", sau {_seconds(a.waited)}" if a.waited is not None else ""
            lines.append(f"  {what}: {a.ack_by} lúc {local_time(a.ack_at, zone)}{waited}")
    waits = [a.waited for a in taken if a.waited is not None]
    if waits:
        average = sum(waits, timedelta(0)) / len(waits)
        lines.append(
            f"  Thời gian xác nhận: nhanh nhất {_seconds(min(waits))}, chậm nhất "
            f"{_seconds(max(waits))}, trung bình {_seconds(average)}"
        )
    return lines


def summary_text(report: DrillReport, zone: ZoneInfo) -> str:
    """The operators' summary of a drill, in Vietnamese, as plain text."""
    lines = _head(report, zone) + _units(report) + _chats(report) + _acks(report, zone)
    lines += [f"Ghi chú: {note}" for note in report.notes]
    return "\n".join(lines)
