"""The operators' digest: one message per cycle summing up the units' road alerts.

With `[telegram] operators_copy = "digest"` the operators' chats get this instead
of a copy (with charts) of every unit's alert: per unit, how many roads of each
kind and level; the deepest roads, linked to their pages; the map. Pure: built
from the cycle's messages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from html import escape

from floodwatch.core.events import Change, Message
from floodwatch.core.text import ALERT_VI, centimetres, level_mark, local_time
from floodwatch.messages.alerts import GOOD_NEWS, OBSERVED_KINDS, SEVERITY, Wording

DIGEST = "digest"  # the alert kind of the digest
# Roads named in the digest, deepest first; the units' own messages name them all.
WORST_ROADS = 5
FORECAST_KINDS = frozenset({"forecast", "forecast_update"})
WARNING_TITLE = "📋 <b>TỔNG HỢP CẢNH BÁO NGẬP ĐƯỜNG</b>"
ALL_CLEAR_TITLE = "🟢 <b>TỔNG HỢP: HẾT NGẬP ĐƯỜNG</b>"
CANCELLED_TITLE = "🟢 <b>TỔNG HỢP: KHÔNG CÒN DỰ BÁO NGẬP</b>"


def _esc(text: str) -> str:
    """Escape text for Telegram HTML."""
    return escape(text, quote=False)


def _unit_line(message: Message, wording: Wording, operators: set[int]) -> str:
    """`<b>Unit</b> (3 đoạn): bắt đầu ngập 1, hết ngập 2 · đang ngập 🟡 mức 1: 1`, and
    whether the operators' chats got this unit's message in full."""
    changes = message.changes
    kinds = Counter(c.alert for c in changes)
    said = ", ".join(f"{ALERT_VI[k]} {n}" for k, n in sorted(kinds.items(), key=_severity))
    levels = Counter(c.event.level for c in changes if c.alert in OBSERVED_KINDS)
    flooded = ", ".join(
        f"{level_mark(level, wording.levels)} mức {level}: {n}"
        for level, n in sorted(levels.items(), reverse=True)
    )
    roads = len({c.event.segment_id for c in changes})
    line = f"<b>{_esc(wording.unit_name(message.unit))}</b> ({roads} đoạn): {said}"
    if flooded:
        line += f" · đang ngập {flooded}"
    if operators & {chat for chat, _ in message.targets}:
        line += " <i>(trực ban đã nhận tin đầy đủ)</i>"
    return line


def _title(kinds: set[str]) -> str:
    """A warning when anything warns, else the good news (the units' headers' rule)."""
    if kinds - GOOD_NEWS:
        return WARNING_TITLE
    return ALL_CLEAR_TITLE if "all_clear" in kinds else CANCELLED_TITLE


def _severity(item: tuple[str, int]) -> int:
    """Sort key of a (kind, count) pair: most severe kind first."""
    return SEVERITY.get(item[0], len(SEVERITY))


def _worst(messages: Sequence[Message]) -> list[tuple[Change, str]]:
    """The deepest roads with water now, then the deepest expected: (change, unit)."""
    observed = [(c, m.unit) for m in messages for c in m.changes if c.alert in OBSERVED_KINDS]
    expected = [(c, m.unit) for m in messages for c in m.changes if c.alert in FORECAST_KINDS]
    observed.sort(key=lambda p: (-p[0].event.depth_m, p[0].event.segment_id))
    expected.sort(key=lambda p: (-p[0].event.peak_depth_m, p[0].event.segment_id))
    return (observed + expected)[:WORST_ROADS]


def _road_line(change: Change, unit: str, wording: Wording) -> str:
    """One of the deepest roads: mark, linked name, unit, depth and what happened."""
    ev = change.event
    mark = level_mark(max(ev.level, 1), wording.levels)
    road = wording.road(ev.segment_id, with_ward=False)
    where = _esc(wording.unit_name(unit))
    what = ALERT_VI[change.alert]
    if change.alert in FORECAST_KINDS:
        when = local_time(ev.expected_onset_at, wording.zone)
        depth = f"sâu nhất {centimetres(ev.peak_depth_m)} (mức {ev.level}), từ {when}"
    else:
        depth = f"{centimetres(ev.depth_m)} (mức {ev.level})"
    return f"{mark} {road} ({where}): {depth} — {what}"


def compose_digest(
    messages: Sequence[Message],
    wording: Wording,
    at: datetime,
    unit: str,
    targets: Sequence[tuple[int, int | None]],
) -> Message | None:
    """The operators' digest of a cycle's unit messages (muted ones left out), or None
    when there is nothing to sum up."""
    sent = [m for m in messages if not m.muted and m.changes]
    if not sent:
        return None
    roads = len({c.event.segment_id for m in sent for c in m.changes})
    operators = {chat for chat, _ in targets}
    lines = [
        _title({c.alert for m in sent for c in m.changes}),
        f"Thời điểm: {local_time(at, wording.zone)} · {len(sent)} đơn vị, {roads} đoạn đường",
        "",
        *(_unit_line(m, wording, operators) for m in sent),
    ]
    worst = _worst(sent)
    if worst:
        lines += ["", "<b>Sâu nhất:</b>", *(_road_line(c, u, wording) for c, u in worst)]
    if wording.public_url:
        lines += ["", f"Bản đồ: {_esc(wording.public_url)}/"]
    lines += ["", "<i>Tin đầy đủ đã gửi tới nhóm của từng đơn vị.</i>"]
    changes = tuple(c for m in sent for c in m.changes)
    return Message(
        unit=unit,
        kinds=(DIGEST,),
        body="\n".join(lines),
        changes=changes,
        targets=tuple(targets),
    )
