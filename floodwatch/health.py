"""Source health (pure): ok, degraded, failing, stale; which inputs are blind.

A source is
- `stale` when its newest data is older than its `stale_after_minutes`
  (counted from its first poll while it has never delivered anything);
- `failing` after `FAILING_AFTER` polls in a row failed;
- `degraded` after a failed poll, or when its last poll rejected or flagged
  more than a tenth of what it delivered;
- `ok` otherwise.

An input (station, variable) is blind when every source that provides it is
stale: the segments that need it are then reported as blind instead of being
silently treated as dry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from floodwatch.text import duration, local_time

FAILING_AFTER = 3
OK, DEGRADED, FAILING, STALE = "ok", "degraded", "failing", "stale"
STATUS_VI = {OK: "bình thường", DEGRADED: "chập chờn", FAILING: "lỗi", STALE: "mất tín hiệu"}


@dataclass(frozen=True)
class Health:
    """What the store knows of one source's polls."""

    first_seen_at: datetime
    consecutive_failures: int = 0
    newest_at: datetime | None = None
    last_delivered: int = 0
    last_doubted: int = 0  # rejected + flagged in the last poll


def status(health: Health, now: datetime, stale_after_minutes: int | None) -> str:
    """The health status of a source at `now`."""
    if stale_after_minutes is not None:
        reference = health.newest_at or health.first_seen_at
        if now - reference > timedelta(minutes=stale_after_minutes):
            return STALE
    if health.consecutive_failures >= FAILING_AFTER:
        return FAILING
    total = health.last_delivered + health.last_doubted
    if health.consecutive_failures or (total and health.last_doubted * 10 > total):
        return DEGRADED
    return OK


def blind_inputs(
    provides: Mapping[str, set[tuple[str, str]]], statuses: Mapping[str, str]
) -> set[tuple[str, str]]:
    """(station, variable) pairs whose every providing source is stale."""
    providers: dict[tuple[str, str], list[str]] = {}
    for source, pairs in provides.items():
        for pair in pairs:
            providers.setdefault(pair, []).append(source)
    return {
        pair
        for pair, sources in providers.items()
        if all(statuses.get(source) == STALE for source in sources)
    }


def no_data_alert(
    source: str,
    newest_at: datetime | None,
    now: datetime,
    station_names: Iterable[str],
    blind_roads: Iterable[str],
    zone: ZoneInfo,
) -> str:
    """The Vietnamese "mất tín hiệu" alarm for operators."""
    since = (
        f"từ {local_time(newest_at, zone)} ({duration(now - newest_at)} trước)"
        if newest_at
        else "từ khi khởi động"
    )
    lines = [
        f"📡 MẤT TÍN HIỆU — nguồn dữ liệu «{source}»",
        f"Không có dữ liệu mới {since}.",
    ]
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


def recovered_alert(source: str, stale_since: datetime, now: datetime, zone: ZoneInfo) -> str:
    """The Vietnamese notice that a source delivers again."""
    return (
        f"✅ CÓ TÍN HIỆU TRỞ LẠI — nguồn dữ liệu «{source}»\n"
        f"Dữ liệu đã được cập nhật lúc {local_time(now, zone)} "
        f"(gián đoạn {duration(now - stale_since)})."
    )
