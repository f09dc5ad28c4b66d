"""Daily bulletin composition, Telegram-HTML splitting and the plain-text fallback."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest

from floodwatch.messages.bulletin import (
    RoadLine,
    StationLine,
    alarm_reached,
    compose_bulletin,
    html_to_plain,
    split_html,
)

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
AT = datetime(2025, 12, 12, 0, 0, tzinfo=UTC)  # 07:00 local
LEVEL_NAMES = [
    "Ngập nhẹ: xe máy đi chậm được",
    "Ngập nửa bánh xe máy: hạn chế đi lại",
    "Ngập sâu: không nên đi qua",
]
ALLOWED_TAGS = {"b", "i", "code", "pre"}


def _h(hours: float) -> datetime:
    return AT + timedelta(hours=hours)


STATIONS = [
    StationLine(
        "TP Cà Mau",
        "Gành Hào",
        (0.65, 0.75, 0.85),
        _h(-0.5),
        0.58,
        False,
        [(_h(10), 0.92), (_h(34), 0.80), (_h(22), 0.50)],
    ),
    StationLine("Gành Hào", "Gành Hào", (1.80, 2.00, 2.20), _h(-1), 2.05, True, [(_h(9), 2.30)]),
    StationLine("Phước Long", None, (None, None, 0.90), None, None, False, []),
]
ROADS = [
    RoadLine("Phan Ngọc Hiển", "An Xuyên", _h(11), _h(12.5), 0.35, 2, "tide"),
    RoadLine("Đề Thám <cũ> & mới", "Tân Thành", _h(9), _h(30), 0.55, 3, "compound"),
    RoadLine("Trần Hưng Đạo", "An Xuyên", _h(10), _h(10.5), 0.12, 1, "rain"),
]


class _BalanceChecker(HTMLParser):
    """Fails on unbalanced or disallowed tags; collects text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        assert tag in ALLOWED_TAGS, tag
        self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (self.stack, tag)
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def _check_balanced(part: str) -> None:
    checker = _BalanceChecker()
    checker.feed(part)
    checker.close()
    assert checker.stack == [], checker.stack
    # No raw "<" or "&" left over: every entity is whole and every tag parsed.
    assert not re.search(r"&(?!(?:#\d+|#x[0-9a-f]+|[a-z][a-z0-9]*);)", part, re.I)


def _bulletin(roads=ROADS, stations=STATIONS) -> str:
    situation = "Triều cường đang lên; mưa vừa & rải rác ở TP Cà Mau."
    return compose_bulletin(AT, ZONE, situation, stations, roads, LEVEL_NAMES)


def _pre_block(text: str) -> str:
    return re.search(r"<pre>(.*?)</pre>", text, re.S).group(1)


def test_header_and_sections():
    text = _bulletin()
    _check_balanced(text)
    assert text.startswith("<b>TIN CẢNH BÁO NGẬP LỤT DO TRIỀU CƯỜNG</b>")
    assert "07:00 ngày 12/12/2025" in text
    assert "1. Tình hình" in text and "mưa vừa &amp; rải rác" in text
    assert text.index("1. Tình hình") < text.index("2. Mực nước") < text.index("3. Các tuyến")


def test_station_rows_in_cm_with_alarm_marks():
    table = html_to_plain(_pre_block(_bulletin()))
    lines = table.splitlines()
    assert lines[0].split() == ["Trạm", "Sông", "BĐ", "I/II/III"]
    row = next(line for line in lines if line.startswith("TP Cà Mau"))
    assert row.split()[-1] == "65/75/85" and "Gành Hào" in row
    assert any(re.fullmatch(r"\s+H 06:30\s+58", line) for line in lines)  # below BĐ I: no mark
    assert any(re.fullmatch(r"\s+Đỉnh 17:00 12/12\s+92 ≥BĐ III", line) for line in lines)
    assert any(re.fullmatch(r"\s+Đỉnh 17:00 13/12\s+80 ≥BĐ II", line) for line in lines)
    # Peaks are listed in time order.
    peak_times = [line.split()[1:3] for line in lines if re.match(r"\s+Đỉnh \d", line)]
    assert peak_times[:3] == [["17:00", "12/12"], ["05:00", "13/12"], ["17:00", "13/12"]]
    assert "180/200/220" in table
    assert re.search(r"H 06:00 \(dự báo\)\s+205 ≥BĐ II", table)
    assert re.search(r"Phước Long\s+—\s+—/—/90", table)


def test_table_lines_fit_a_phone():
    table = html_to_plain(_pre_block(_bulletin()))
    assert max(len(line) for line in table.splitlines()) <= 40


def test_alarm_reached():
    assert alarm_reached(0.64, (0.65, 0.75, 0.85)) == 0
    assert alarm_reached(0.65, (0.65, 0.75, 0.85)) == 1
    assert alarm_reached(1.21, (0.65, 0.75, 0.85)) == 3
    assert alarm_reached(0.95, (None, None, 0.90)) == 3
    assert alarm_reached(0.80, (None, None, None)) == 0


def test_roads_sorted_by_onset_with_level_cause_and_colour():
    text = _bulletin()
    roads = text[text.index("3. Các tuyến") :]
    first, second, third = (roads.index(name) for name in ("Đề Thám", "Trần Hưng", "Phan Ngọc"))
    assert first < second < third
    # Three levels: yellow, orange, and red for the deepest ("không nên đi qua").
    assert "🔴 <b>Đề Thám &lt;cũ&gt; &amp; mới</b> (Tân Thành), mức 3" in roads
    assert "🟡 <b>Trần Hưng Đạo</b>" in roads and "🟠 <b>Phan Ngọc Hiển</b>" in roads
    assert "từ 16:00 12/12, sâu nhất 55 cm lúc 13:00 13/12" in roads
    assert "sâu nhất 35 cm lúc 19:30" in roads
    assert "Do mưa kết hợp triều cường." in roads and "Do mưa." in roads
    assert "Ngập sâu: không nên đi qua" in roads
    assert "<cũ>" not in text


def test_no_roads():
    text = _bulletin(roads=[])
    assert "Không có tuyến đường nào dự báo ngập." in text


def _long_bulletin() -> str:
    roads = [
        RoadLine(
            f"Đường số {i} & <nhánh {i}>", "Tân Thành", _h(i / 10), _h(i / 10 + 1), 0.2, 2, "tide"
        )
        for i in range(60)
    ]
    stations = STATIONS * 12
    text = _bulletin(roads=roads, stations=stations)
    assert len(text) > 10_000
    return text


def _assert_contiguous(original_plain: str, parts: list[str]) -> None:
    """Part texts, in order, rebuild the original text, with only line breaks lost at cuts."""
    position = 0
    for part in parts:
        plain = html_to_plain(part)
        assert original_plain.startswith(plain, position), (position, plain[:40])
        position += len(plain)
        while original_plain[position : position + 1] == "\n":
            position += 1
    assert position == len(original_plain)


def test_split_long_bulletin():
    text = _long_bulletin()
    parts = split_html(text)
    assert len(parts) >= 3
    for part in parts:
        assert len(part) <= 4096
        assert len(part.encode("utf-16-le")) // 2 <= 4096
        _check_balanced(part)
    _assert_contiguous(html_to_plain(text), parts)


def test_split_reopens_pre():
    text = _long_bulletin()
    parts = split_html(text, limit=1500)
    # The station table spans parts: closed at the end of one, reopened at the next.
    continued = [
        i
        for i in range(1, len(parts))
        if parts[i - 1].endswith("</pre>") and parts[i].startswith("<pre>")
    ]
    assert continued
    for i in continued:
        assert "Trạm" not in parts[i].split("\n")[0]  # a continued row, not a new table
    for part in parts:
        _check_balanced(part)
    _assert_contiguous(html_to_plain(text), parts)


def test_split_pre_without_blank_lines():
    rows = "\n".join(f"Trạm {i:03d} &amp; sông      65/75/85" for i in range(40))
    text = f"<b>Bảng</b>\n<pre>{rows}</pre>\nHết."
    parts = split_html(text, limit=300)
    assert parts[0].startswith("<b>Bảng</b>\n<pre>Trạm 000")
    for part in parts[:-1]:
        assert part.endswith("</pre>")
        _check_balanced(part)
    for part in parts[1:-1]:
        assert part.startswith("<pre>Trạm ")
    assert parts[-1].endswith("</pre>\nHết.")
    _assert_contiguous(html_to_plain(text), parts)


def test_split_small_text_unchanged():
    assert split_html("<b>a</b>\nb") == ["<b>a</b>\nb"]


def test_long_line_split_at_space_without_cutting_entities():
    words = " ".join(f"từ{i}&amp;&lt;x&gt;" for i in range(800))
    text = f"<i>{words}</i>\n<b>cuối</b>"
    parts = split_html(text, limit=500)
    assert len(parts) > 5
    for part in parts:
        assert len(part) <= 500
        _check_balanced(part)
        assert part.startswith("<i>") or part == "<b>cuối</b>"
    for part in parts[:-2]:
        assert part.endswith(" </i>")  # cut at a space
    _assert_contiguous(html_to_plain(text), parts)


def test_hard_split_without_spaces_keeps_entities():
    text = "<code>" + "a&amp;" * 600 + "</code>"
    parts = split_html(text, limit=200)
    for part in parts:
        assert len(part) <= 200
        _check_balanced(part)
        body = part.removeprefix("<code>").removesuffix("</code>")
        assert re.fullmatch(r"(?:a|&amp;)+", body), body
    assert "".join(html_to_plain(p) for p in parts) == html_to_plain(text)


def test_split_counts_utf16_units():
    text = "\n".join("🔵 đường ngập" for _ in range(600))
    for part in split_html(text, limit=1000):
        assert len(part.encode("utf-16-le")) // 2 <= 1000


def test_split_rejects_tiny_limit():
    with pytest.raises(ValueError):
        split_html("abc", limit=10)


@pytest.mark.parametrize(
    "plain",
    ["Đề Thám <cũ> & mới", "a&amp;b literally", "5 < 6 > 4", "Mực nước 1,21 m\n≥BĐ III"],
)
def test_html_to_plain_round_trip(plain):
    import html

    assert html_to_plain(f"<b>{html.escape(plain, quote=False)}</b>") == plain
    assert html_to_plain("<pre>x &lt; y</pre>") == "x < y"
