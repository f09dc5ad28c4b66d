"""`floodwatch backtest`: the skill drill's scores equal the ones worked out by hand.

drills/skill/make_season.py builds October 2025 on one gauge and two roads, A
(crest 1.00 m, unit phuong_a) and B (crest 1.20 m, unit phuong_b), with
levels at 10 / 30 / 50 cm of depth. Every bump is 16:00–20:00 local and peaks
2 cm above its value at 18:00; forecasts are issued daily at 06:00 for 48 h.
Worked by hand from the scenario table (drills/skill/README.md):

| day | A observed / forecast (peak depth) | B observed / forecast | A | B |
|---|---|---|---|---|
| 3 | 24 / 24 cm, first in day 2's issue | dry / dry | L1 hit, 34 h | — |
| 7 | 58 / 47 cm | 38 / 27 cm | L1, L2 hit 34 h; L3 miss | L1 hit 34 h; L2 miss |
| 11 | 24 cm / dry (surge) | dry | L1 miss | — |
| 15 | dry / 38 cm (negative surge) | dry / 18 cm | L1, L2 false alarm | L1 false alarm |
| 19 | rain 36 cm / dry | rain 36 cm / dry | L1, L2 miss | L1, L2 miss |
| 23 | gauge silent / 24 cm | — | L1 unverifiable | — |
| 27 | 24 cm / 24 cm from day 27's issue only | — | L1 hit, 10 h | — |
| 31 | after the last observation / 24 cm | — | L1 pending | — |

Level 1: hits 4 (A 3, B 1), misses 3, false alarms 2: POD 4/7 = 57 %, FAR 2/6 = 33 %,
CSI 4/9 = 44 %; leads 10, 34, 34, 34 h (median 34). Level 2: 1 hit, 3 misses, 1 false
alarm: POD 25 %, FAR 50 %, CSI 20 %. Level 3: 0 hits, 1 miss: POD 0 %, FAR undefined,
CSI 0 %. Tide timing at level 1: onsets exact; peak errors 0 (day 3, 27), −11 cm (day 7,
A and B).
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import create_engine, text

from floodwatch.cli.main import main
from floodwatch.core.skill import (
    Coverage,
    IssuedForecast,
    ObservedFlood,
    Road,
    Rules,
    score,
)
from tests.conftest import DATA, ROOT, edit_config

DRILL = ROOT / "drills" / "skill"


@pytest.fixture
def drill(tmp_path, database_url):
    """A copy of the skill drill's config, on the test database."""
    folder = tmp_path / "skill"
    shutil.copytree(DRILL, folder)
    config = folder / "floodwatch.toml"
    edit_config(config, {'"sqlite:///var/skill-drill.db"': f'"{database_url}"'})
    return config


def run(config, *args):
    return CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)


def level(document: dict, n: int) -> dict:
    return document["levels"][n - 1]


def test_the_drill_csv_is_what_its_generator_writes(tmp_path):
    script = tmp_path / "make_season.py"
    shutil.copyfile(DRILL / "make_season.py", script)
    namespace: dict = {"__file__": str(script), "__name__": "drill"}
    exec(compile(script.read_text(encoding="utf-8"), str(script), "exec"), namespace)
    namespace["main"]()
    assert (tmp_path / "season.csv").read_bytes() == (DRILL / "season.csv").read_bytes()


def test_drill_scores_match_the_hand_worked_values(drill):
    result = run(drill, "backtest", str(drill.parent / "season.csv"), "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    one, two, three = level(doc, 1), level(doc, 2), level(doc, 3)
    assert (one["hits"], one["misses"], one["false_alarms"]) == (4, 3, 2)
    assert (one["unverifiable"], one["pending"]) == (1, 1)
    assert (one["pod"], one["far"], one["csi"]) == (
        round(4 / 7, 4),
        round(2 / 6, 4),
        round(4 / 9, 4),
    )
    assert one["lead_hours"] == {"median": 34.0, "min": 10.0, "all": [10.0, 34.0, 34.0, 34.0]}
    assert (two["hits"], two["misses"], two["false_alarms"]) == (1, 3, 1)
    assert (two["pod"], two["far"], two["csi"]) == (0.25, 0.5, 0.2)
    assert (three["hits"], three["misses"], three["false_alarms"]) == (0, 1, 0)
    assert (three["pod"], three["far"], three["csi"]) == (0.0, None, 0.0)
    a, b = one["units"]["phuong_a"], one["units"]["phuong_b"]
    assert (a["hits"], a["misses"], a["false_alarms"], a["unverifiable"]) == (3, 2, 1, 1)
    assert (b["hits"], b["misses"], b["false_alarms"]) == (1, 1, 1)
    assert one["segments"]["duong-a"]["lead_hours"]["all"] == [10.0, 34.0, 34.0]


def test_drill_floods_and_warnings_are_dated_as_worked_out(drill):
    result = run(drill, "backtest", str(drill.parent / "season.csv"), "--format", "json")
    doc = json.loads(result.stdout)
    local = timedelta(hours=7)

    def day(iso: str) -> int:
        return (datetime.fromisoformat(iso) + local).day

    level1 = [f for f in doc["floods"] if f["level"] == 1]
    assert sorted((f["segment"], day(f["observed_at"]), f["result"]) for f in level1) == [
        ("duong-a", 3, "hit"), ("duong-a", 7, "hit"), ("duong-a", 11, "miss"),
        ("duong-a", 19, "miss"), ("duong-a", 27, "hit"),
        ("duong-b", 7, "hit"), ("duong-b", 19, "miss"),
    ]  # fmt: skip
    onset = datetime.fromisoformat(
        next(f["observed_at"] for f in level1 if day(f["observed_at"]) == 3)
    )
    assert onset.astimezone(UTC) == datetime(2025, 10, 3, 9, tzinfo=UTC)  # 16:00 local
    verdicts = sorted(
        (w["segment"], w["level"], day(w["onset_at"]), w["verdict"])
        for w in doc["warnings"]
        if w["verdict"] != "verified"
    )
    assert verdicts == [
        ("duong-a", 1, 15, "false_alarm"), ("duong-a", 1, 23, "unverifiable"),
        ("duong-a", 1, 31, "pending"), ("duong-a", 2, 15, "false_alarm"),
        ("duong-b", 1, 15, "false_alarm"),
    ]  # fmt: skip
    bands = {row["lead_band"]: row for row in doc["tide_timing"] if row["forecasts"]}
    assert bands["6–12 h"]["forecasts"] == 1 and bands["6–12 h"]["mean_peak_error_m"] == 0.0
    assert bands["24–48 h"]["forecasts"] == 3
    assert bands["24–48 h"]["mean_onset_error_hours"] == 0.0
    assert bands["24–48 h"]["mean_peak_error_m"] == pytest.approx(-0.22 / 3, abs=1e-4)


def test_the_table_prints_the_scores_in_vietnamese(drill):
    result = run(drill, "backtest", str(drill.parent / "season.csv"))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "KIỂM ĐỊNH CẢNH BÁO NGẬP: 01/10/2025 00:00 – 31/10/2025 00:00"
    row = next(line for line in lines if line.startswith("Mức 1 (≥ 10 cm)"))
    assert row.split() == [
        "Mức",
        "1",
        "(≥",
        "10",
        "cm)",
        "4",
        "3",
        "2",
        "57%",
        "33%",
        "44%",
        "34",
        "giờ",
        "(10",
        "giờ)",
    ]
    row3 = next(line for line in lines if line.startswith("Mức 3 (≥ 50 cm)"))
    assert row3.split() == ["Mức", "3", "(≥", "50", "cm)", "0", "1", "0", "0%", "—", "0%", "—"]
    assert (
        "Không kiểm chứng được (thiếu số liệu đo): 1 cảnh báo. Chưa đến lúc kiểm chứng: 1." in lines
    )
    assert any(
        line.startswith("Phường A (diễn tập)") and line.split()[4:7] == ["3", "2", "1"]
        for line in lines
    )
    assert "backtest: replaying, 100 %" in result.stderr


def test_forecasts_are_kept_compactly_and_each_issue_is_kept(drill, database_url):
    assert run(drill, "replay", "-q", str(drill.parent / "season.csv")).exit_code == 0
    engine = create_engine(database_url)
    with engine.connect() as conn:
        cycles = conn.execute(text("SELECT count(*) FROM cycle")).scalar()
        rows = conn.execute(
            text(
                "SELECT issued_at, level FROM forecast_issue WHERE segment_id = 'duong-a' "
                "ORDER BY issued_at"
            )  # fmt: skip
        ).all()
        total = conn.execute(text("SELECT count(*) FROM forecast_issue")).scalar()
    engine.dispose()
    assert cycles == 721
    assert total < cycles / 10  # a row when the forecast changes, not one per cycle
    first = rows[0]
    assert str(first[0]).startswith("2025-10-01 23:00") and first[1] == 1  # day 2, 06:00 local
    # The day-15 false alarm stays on record after the forecast was withdrawn.
    assert any(str(issued).startswith("2025-10-13 23:00") and lvl == 2 for issued, lvl in rows)


def test_backtest_scores_the_configured_database_without_a_file(drill):
    assert run(drill, "replay", "-q", str(drill.parent / "season.csv")).exit_code == 0
    result = run(drill, "backtest", "--format", "json")
    assert result.exit_code == 0, result.output
    one = level(json.loads(result.stdout), 1)
    assert (one["hits"], one["misses"], one["false_alarms"]) == (4, 3, 2)
    # A shorter period: only the first ten days.
    result = run(
        drill, "backtest", "--from", "2025-10-01", "--to", "2025-10-10", "--format", "json"
    )
    one = level(json.loads(result.stdout), 1)
    assert (one["hits"], one["misses"], one["false_alarms"]) == (3, 0, 0)


def test_xlsx_and_png_are_written(drill, tmp_path):
    xlsx, png = tmp_path / "skill.xlsx", tmp_path / "skill.png"
    result = run(
        drill, "backtest", str(drill.parent / "season.csv"), "--xlsx", str(xlsx), "--png", str(png)
    )
    assert result.exit_code == 0, result.output
    book = load_workbook(xlsx)
    assert book.sheetnames == [
        "Tổng hợp",
        "Từng trận ngập",
        "Từng cảnh báo",
        "Sai số dự báo triều",
        "Ghi chú",
    ]
    rows = list(book["Tổng hợp"].iter_rows(values_only=True))
    assert rows[0][:6] == ("Mức", "Phạm vi", "Tên", "Báo trúng", "Bỏ sót", "Báo sai")
    overall = next(r for r in rows if r[0] == "Mức 1 (≥ 10 cm)" and r[1] == "Toàn bộ")
    assert overall[3:8] == (4, 3, 2, 1, 1) and overall[8] == pytest.approx(4 / 7)
    assert any(r[2] == "Đường thử A" for r in rows)
    results = {r[6] for r in book["Từng trận ngập"].iter_rows(min_row=2, values_only=True)}
    assert results == {"báo trúng", "bỏ sót"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_a_file_without_forecasts_is_warned_about_and_every_flood_missed(drill, tmp_path):
    observations = tmp_path / "observed.csv"
    lines = (drill.parent / "season.csv").read_text(encoding="utf-8").splitlines()
    observations.write_text("\n".join(line for line in lines if ",forecast," not in line) + "\n")
    result = run(drill, "backtest", str(observations), "--format", "json")
    assert result.exit_code == 0, result.output
    assert "holds no water-level forecast" in result.stderr
    one = level(json.loads(result.stdout), 1)
    assert (one["hits"], one["misses"], one["false_alarms"], one["pod"]) == (0, 7, 0, 0.0)


def test_tide_forecasts_come_from_the_offline_tables(project, tmp_path):
    kept = tmp_path / "kept.db"
    result = run(
        project, "backtest", str(DATA / "replay" / "spring_tide_dec2024.csv"),
        "--tide-forecasts", "--db", f"sqlite:///{kept}", "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "holds no water-level forecast" not in result.stderr
    doc = json.loads(result.stdout)
    assert level(doc, 1)["misses"] > 0  # the file's floods were scored
    engine = create_engine(f"sqlite:///{kept}")
    with engine.connect() as conn:
        issues = conn.execute(
            text(
                "SELECT count(DISTINCT issued) FROM reading WHERE kind = 'forecast' "
                "AND station = 'tp_ca_mau' AND variable = 'water_level'"
            )  # fmt: skip
        ).scalar()
    engine.dispose()
    assert issues == 5  # one a UTC day, 13 to 17 December (UTC), as the live service polls


def test_tide_forecasts_and_db_need_a_file(drill):
    for option in (["--tide-forecasts"], ["--db", "sqlite:///x.db"]):
        result = run(drill, "backtest", *option)
        assert result.exit_code == 1 and "go with a CSV_FILE" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.csv"], "missing.csv"),
        (["--from", "2025-10-10", "--to", "2025-10-01"], "is after --to"),
        (["--window", "-1"], "--window"),
        (["--format", "yaml"], "--format"),
        (["x.csv", "--xlsx", "/no/such/folder/x.xlsx"], "no folder /no/such/folder"),
        (["x.csv", "--db", "notaurl"], "--db: not a database URL"),
    ],
)
def test_bad_input_gets_one_line(drill, args, message):
    result = run(drill, "backtest", *args)
    assert result.exit_code in (1, 2)
    assert message in result.output
    assert "Traceback" not in result.output


def test_an_empty_database_says_there_is_nothing_to_score(drill):
    result = run(drill, "backtest")
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "no assessment cycle" in result.output


def test_garbage_csv_is_refused_in_one_line(drill, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"PK\x03\x04 not a csv")
    result = run(drill, "backtest", str(bad))
    assert result.exit_code == 1 and "ZIP" in result.output and "Traceback" not in result.output


# --- the arithmetic on its own ---------------------------------------------------------

T0 = datetime(2025, 6, 1, tzinfo=UTC)
ROADS = {"s": Road("u", "g", "g")}


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def fc(
    issued: float, onset: float, end: float, lvl: int = 1, peak_m: float = 0.2
) -> IssuedForecast:
    return IssuedForecast("s", h(issued), lvl, h(onset), h(end), h((onset + end) / 2), peak_m, 1)


def flood(at: float, closed: float, reached=(0,), peak_m: float = 0.2) -> ObservedFlood:
    return ObservedFlood(
        1, "s", "u", h(at), h(closed), tuple(h(at + r) for r in reached), peak_m, h(at)
    )


EVERY_HOUR = Coverage(
    {("g", "water_level"): [h(x) for x in range(-10, 200)]}, timedelta(minutes=90)
)


def test_lead_time_runs_back_over_the_unbroken_chain_only():
    rows = [fc(0, 30, 34), IssuedForecast("s", h(5)), fc(10, 31, 35), fc(20, 32, 36)]
    skill = score(Rules(h(0), h(100), 1), ROADS, rows, [flood(30, 33)], EVERY_HOUR)
    (hit,) = skill.outcomes
    assert hit.result == "hit" and hit.lead == timedelta(hours=20)  # from the 10 h issue


def test_the_timing_window_is_inclusive_and_a_later_onset_is_a_miss():
    rows = [fc(0, 33, 40)]
    assert score(Rules(h(0), h(100), 1, timedelta(hours=3)), ROADS, rows, [flood(30, 34)],
                 EVERY_HOUR).outcomes[0].result == "hit"  # fmt: skip
    assert score(Rules(h(0), h(100), 1, timedelta(hours=2)), ROADS, rows, [flood(30, 34)],
                 EVERY_HOUR).outcomes[0].result == "miss"  # fmt: skip


def test_a_forecast_issued_at_the_onset_is_not_a_warning():
    rows = [fc(30, 30, 34)]
    skill = score(Rules(h(0), h(100), 1), ROADS, rows, [flood(30, 34)], EVERY_HOUR)
    assert [o.result for o in skill.outcomes] == ["miss"]
    assert skill.warnings == []  # not a warning at all, so not a false alarm either


def test_no_flood_and_no_warning_scores_are_undefined_not_zero():
    skill = score(Rules(h(0), h(100), 2), ROADS, [], [], EVERY_HOUR)
    assert skill.scores(1) == {}
    skill = score(Rules(h(0), h(100), 2), ROADS, [fc(0, 20, 24)], [], EVERY_HOUR)
    scores = skill.scores(1)[""]
    assert (scores.false_alarms, scores.pod, scores.far, scores.csi) == (1, None, 1.0, 0.0)


def test_a_gap_in_the_gauge_makes_a_warning_unverifiable():
    gappy = Coverage(
        {("g", "water_level"): [h(x) for x in range(-10, 200) if not 18 <= x <= 26]},
        timedelta(minutes=90),
    )
    skill = score(Rules(h(0), h(100), 1), ROADS, [fc(0, 20, 24)], [], gappy)
    assert [w.verdict for w in skill.warnings] == ["unverifiable"]
