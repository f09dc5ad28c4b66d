"""The operators' alarms, in Vietnamese: data gone quiet and back, cycles stopped, roads
removed from the geodata. Pure: facts in, Telegram HTML out."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from floodwatch.core.text import duration, label, local_time


def _since(newest_at: datetime | None, now: datetime, zone: ZoneInfo) -> str:
    """`từ 05/11/2025 06:00 (3 giờ trước)`, or since start-up when nothing ever came."""
    if newest_at is None:
        return "từ khi khởi động (chưa nhận được số liệu nào)"
    return f"từ {local_time(newest_at, zone)} ({duration(now - newest_at)} trước)"


def no_data_alert(
    source: str,
    newest_at: datetime | None,
    now: datetime,
    station_names: Iterable[str],
    blind_roads: Iterable[str],
    zone: ZoneInfo,
    inputs: Sequence[tuple[str, str, datetime | None]] = (),
) -> str:
    """The "mất tín hiệu" alarm for operators.

    `inputs` lists (station name, variable, newest data time) of each input that
    has gone quiet; without it the source as a whole has.
    """
    lines = [f"📡 MẤT TÍN HIỆU — nguồn dữ liệu «{source}»"]
    if inputs:
        lines.append("Không có dữ liệu mới:")
        for name, variable, newest in sorted(inputs, key=lambda i: (i[0], i[1])):
            what = label("variable", variable)
            lines.append(f"• {name} ({what}) {_since(newest, now, zone)}")
    else:
        lines.append(f"Không có dữ liệu mới {_since(newest_at, now, zone)}.")
        stations = sorted(station_names)
        if stations:
            lines.append(f"Trạm bị ảnh hưởng: {', '.join(stations)}.")
    roads = sorted(blind_roads)
    if roads:
        lines.append(
            f"{len(roads)} tuyến đường không còn được theo dõi (không rõ tình trạng ngập): "
            + ", ".join(roads[:20])
            + (" …" if len(roads) > 20 else "")
        )
    lines.append("Đề nghị kiểm tra thiết bị, đường truyền hoặc nhà cung cấp dữ liệu.")
    return "\n".join(lines)


def recovered_alert(
    source: str,
    stale_since: datetime,
    now: datetime,
    zone: ZoneInfo,
    inputs: Sequence[tuple[str, str]] = (),
) -> str:
    """The notice that a source (or some of its inputs, `inputs`) delivers again."""
    text = (
        f"✅ CÓ TÍN HIỆU TRỞ LẠI — nguồn dữ liệu «{source}»\n"
        f"Dữ liệu đã được cập nhật lúc {local_time(now, zone)} "
        f"(gián đoạn {duration(now - stale_since)})."
    )
    if inputs:
        names = ", ".join(
            f"{name} ({label('variable', variable)})" for name, variable in sorted(inputs)
        )
        text += f"\nTrạm: {names}."
    return text


def cycles_stopped_alarm(last: datetime | None, now: datetime, ahead: bool, zone: ZoneInfo) -> str:
    """The heartbeat's alarm: no cycle has completed for a while (or the last is ahead)."""
    since = local_time(last, zone) if last else "khi khởi động"
    reason = (
        f"Chu kỳ gần nhất ghi lúc {since}, sau giờ hiện tại của máy chủ "
        f"({local_time(now, zone)}): đồng hồ máy chủ bị lệch hoặc có số liệu ghi thời điểm "
        "tương lai, nên mọi chu kỳ đều bị bỏ qua."
        if ahead
        else f"Chưa hoàn thành chu kỳ đánh giá nào từ {since}."
    )
    return (
        "🫀 <b>HỆ THỐNG NGỪNG ĐÁNH GIÁ</b>\n"
        f"{reason} Cảnh báo ngập có thể bị chậm hoặc thiếu; đề nghị kiểm tra máy chủ và nhật "
        "ký (journalctl -u floodwatch)."
    )


def segments_removed_alarm(names: Sequence[str]) -> str:
    """Roads with open events that left the segment file: their events were closed."""
    return (
        "🗺️ <b>ĐOẠN ĐƯỜNG KHÔNG CÒN TRONG DỮ LIỆU ĐỊA LÝ</b>\n"
        f"{len(names)} sự kiện ngập đang mở của các đoạn đường đã bị xoá khỏi tệp đoạn "
        f"đường được đóng lại; các đoạn này không còn được theo dõi: {', '.join(names)}. "
        "Nếu là nhầm lẫn, khôi phục tệp đoạn đường rồi khởi động lại dịch vụ."
    )
