"""The CSV drop folder: read once, moved only after storing, archive vs quarantine."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from floodwatch.config import parse_settings
from floodwatch.core.geo import load_geodata
from floodwatch.sources import SourceContext, build_sources
from floodwatch.sources._http import RetryPolicy
from floodwatch.sources.drop_folder import DropFolderSource
from tests.conftest import ROOT

NOW = datetime(2024, 12, 16, 12, tzinfo=UTC)
START, END = datetime(2024, 12, 15, tzinfo=UTC), datetime(2024, 12, 19, tzinfo=UTC)
HEADER = "time,station,variable,value\n"
GOOD = HEADER + (
    "2024-12-16T17:00:00+07:00,tp_ca_mau,water_level,1.05\n"
    "2024-12-16T18:00:00+07:00,tp_ca_mau,water_level,1.07\n"
)


@pytest.fixture(scope="module")
def geodata():
    """The shipped stations and segments."""
    return load_geodata(ROOT / "geodata/segments.geojson", ROOT / "geodata/stations.geojson")


@pytest.fixture
def source(tmp_path, geodata) -> DropFolderSource:
    """A drop folder at `drop/` next to the config file, built as the service builds it."""
    settings = parse_settings(
        {
            "storage": {"database_url": "sqlite:///x.db"},
            "geodata": {
                "segments": str(ROOT / "geodata/segments.geojson"),
                "stations": str(ROOT / "geodata/stations.geojson"),
            },
            "units": [{"id": "so_xay_dung", "name": "Sở Xây dựng"}],
            "sources": {"drop": {"type": "drop_folder", "path": "drop"}},
        },
        path=tmp_path / "etc" / "floodwatch.toml",
    )
    context = SourceContext(settings, geodata, requests.Session(), RetryPolicy(sleep=[].append))
    [built] = build_sources(settings, geodata, context)
    return built


def drop(source: DropFolderSource, name: str, content: str | bytes, age_s: float = 60) -> Path:
    """Write a file into the folder, last modified `age_s` seconds ago."""
    source.folder.mkdir(parents=True, exist_ok=True)  # as whoever drops files would
    path = source.folder / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def names(folder: Path) -> list[str]:
    """File names directly in a folder."""
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def test_folder_resolves_against_the_config_and_is_created_on_first_poll(source, tmp_path):
    assert source.folder == tmp_path / "etc" / "drop"
    assert not source.folder.exists()  # `check` builds sources and must not create folders
    source.fetch(START, END, NOW)
    assert (source.folder / "archive").is_dir() and (source.folder / "quarantine").is_dir()
    assert source.provides() == set()
    assert (source.interval_minutes, source.stale_after_minutes) == (5, None)


def test_good_file_is_archived_only_after_store(source):
    drop(source, "tp_ca_mau_20241216.csv", GOOD)

    result = source.fetch(START, END, NOW)

    assert [(r.station, r.time.isoformat(), r.value) for r in result.readings] == [
        ("tp_ca_mau", "2024-12-16T10:00:00+00:00", 1.05),
        ("tp_ca_mau", "2024-12-16T11:00:00+00:00", 1.07),
    ]
    assert result.rejected == []
    assert names(source.folder) == ["tp_ca_mau_20241216.csv"]  # nothing moved by fetch

    source.after_store()

    assert names(source.folder) == []
    assert names(source.archive) == ["tp_ca_mau_20241216.csv"]
    assert names(source.quarantine) == []
    assert source.fetch(START, END, NOW).readings == []  # ingested once


def test_bad_rows_quarantine_the_file_with_an_error_report(source):
    drop(source, "mixed.csv", GOOD + (
        "2024-12-16T19:00:00+07:00,tp_ca_mau,water_level,n/a\n"
        "2024-12-16T19:00:00,song_doc,water_level,0.9\n"
        "2024-12-16T19:00:00+07:00,nowhere,water_level,0.9\n"
        "2024-12-16T20:00:00+07:00,song_doc,water_level,0.95\n"
    ))  # fmt: skip

    result = source.fetch(START, END, NOW)

    # The good rows of a bad file still arrive.
    assert [(r.station, r.value) for r in result.readings] == [
        ("tp_ca_mau", 1.05), ("tp_ca_mau", 1.07), ("song_doc", 0.95)]  # fmt: skip
    assert [(r.reason, r.detail) for r in result.rejected] == [
        ("malformed", "mixed.csv: line 4: `value` 'n/a' is not a number"),
        ("malformed", "mixed.csv: line 5: `time` '2024-12-16T19:00:00' has no UTC offset "
                      "(write e.g. +07:00 or Z)"),
        ("malformed", "mixed.csv: line 6: unknown station 'nowhere'"),
    ]  # fmt: skip
    assert names(source.quarantine) == []

    source.after_store()

    assert names(source.folder) == [] and names(source.archive) == []
    assert names(source.quarantine) == ["mixed.csv", "mixed.csv.error.txt"]
    report = (source.quarantine / "mixed.csv.error.txt").read_text(encoding="utf-8")
    assert "line 4: `value` 'n/a' is not a number" in report
    assert "line 5:" in report and "line 6: unknown station 'nowhere'" in report
    assert "3 row(s) were accepted anyway" in report


def test_a_file_still_being_written_waits_for_the_next_poll(source):
    path = drop(source, "arriving.csv", GOOD, age_s=0)

    assert source.fetch(START, END, NOW).readings == []
    source.after_store()
    assert names(source.folder) == ["arriving.csv"]

    os.utime(path, (time.time() - 10, time.time() - 10))
    assert len(source.fetch(START, END, NOW).readings) == 2


def test_files_are_read_oldest_first_and_others_are_ignored(source):
    drop(source, "b_new.csv", GOOD.replace("1.05", "2.05"), age_s=30)
    drop(source, "a_old.csv", GOOD, age_s=300)
    drop(source, "notes.txt", "not a csv")
    drop(source, ".uploading.csv", GOOD)

    result = source.fetch(START, END, NOW)

    assert [r.value for r in result.readings] == [1.05, 1.07, 2.05, 1.07]
    source.after_store()
    assert names(source.archive) == ["a_old.csv", "b_new.csv"]
    assert names(source.folder) == [".uploading.csv", "notes.txt"]


def test_an_archived_name_is_never_overwritten(source):
    source.archive.mkdir(parents=True)
    (source.archive / "daily.csv").write_text("the first one", encoding="utf-8")
    drop(source, "daily.csv", GOOD)

    source.fetch(START, END, NOW)
    source.after_store()

    archived = names(source.archive)
    assert len(archived) == 2 and "daily.csv" in archived
    [renamed] = [n for n in archived if n != "daily.csv"]
    assert renamed.startswith("daily.") and renamed.endswith("Z.csv")
    assert (source.archive / "daily.csv").read_text(encoding="utf-8") == "the first one"
    assert (source.archive / renamed).read_text(encoding="utf-8") == GOOD


def test_non_utf8_file_is_quarantined_with_a_clear_reason(source):
    # Excel on Vietnamese Windows writes Windows-1258.
    text = GOOD + "2024-12-16T19:00:00+07:00,tp_ca_mau,water_level,1.1 # Cà Mau\n"
    drop(source, "excel.csv", text.encode("cp1258"))

    result = source.fetch(START, END, NOW)

    assert result.readings == []
    [rejection] = result.rejected
    assert rejection.reason == "malformed"
    assert rejection.detail.startswith("excel.csv: not UTF-8 text (byte 0x")
    assert rejection.detail.endswith("save it as CSV UTF-8")
    source.after_store()
    report = (source.quarantine / "excel.csv.error.txt").read_text(encoding="utf-8")
    assert "not UTF-8 text" in report and "0 row(s) were accepted" in report


def test_an_unusable_file_is_quarantined_whole(source):
    drop(source, "wrong_columns.csv", "when,where,what\n2024-12-16,x,1\n")

    result = source.fetch(START, END, NOW)

    assert [r.detail for r in result.rejected] == [
        "wrong_columns.csv: line 1: missing column(s) time, station, variable, value "
        "(expected time,station,variable,value[,kind,issued])"
    ]
    source.after_store()
    assert names(source.quarantine) == ["wrong_columns.csv", "wrong_columns.csv.error.txt"]


def test_a_file_changed_after_reading_is_read_again_not_moved(source):
    path = drop(source, "growing.csv", GOOD)
    source.fetch(START, END, NOW)
    with path.open("a", encoding="utf-8") as handle:
        handle.write("2024-12-16T19:00:00+07:00,tp_ca_mau,water_level,1.1\n")

    source.after_store()

    assert names(source.folder) == ["growing.csv"] and names(source.archive) == []


def test_a_crash_before_after_store_means_the_file_is_read_again(source):
    drop(source, "once.csv", GOOD)
    first = source.fetch(START, END, NOW)
    # The process dies here, before after_store: a new source sees the same file.
    again = DropFolderSource("drop", 5, source.folder, source.stations)
    assert again.fetch(START, END, NOW).readings == first.readings
