"""Hostile config files: one clear line naming the file and key, exit 1, never a traceback.

Covers whole files that are no TOML text, every physical value and duration
beyond its bound, and database URLs `run` could not open (which `check` must
refuse the same way, without creating anything).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from floodwatch.config import load_settings
from floodwatch.errors import ConfigError
from tests.hostile_helpers import (
    BIG_DIGITS,
    DEEP,
    HUGE_DIGITS,
    NOT_TEXT,
    UNITS,
    VALID_CSV,
    cli,
    config_text,
    error_lines,
    write_config,
)

# --- whole files ----------------------------------------------------------------

WHOLE_FILES = {
    **{f"not-text-{name}": data for name, data in NOT_TEXT.items()},
    "int-5000-digits": f"[events]\nclose_after_minutes = {HUGE_DIGITS}\n".encode(),
    "inline-table-nested": ("x = " + "{a=" * DEEP + "1" + "}" * DEEP + "\n").encode(),
    "array-nested": ("x = " + "[" * DEEP + "]" * DEEP + "\n").encode(),
    "nul-byte": b'timezone = "Asia/Ho_Chi_Minh"\x00\n',
    "key-200kb": ("k" * 200_000 + " = 1\n").encode(),
    "broken-table-header": b"[storage\ndatabase_url = 1\n",
}


@pytest.fixture
def csv_file(tmp_path) -> Path:
    """A valid replay file, for commands that need one."""
    path = tmp_path / "readings.csv"
    path.write_text(VALID_CSV, encoding="utf-8")
    return path


@pytest.mark.parametrize("command", ["check", "replay"])
@pytest.mark.parametrize("content", list(WHOLE_FILES.values()), ids=list(WHOLE_FILES))
def test_unusable_config_file_is_one_line(tmp_path, csv_file, command, content):
    path = tmp_path / "floodwatch.toml"
    path.write_bytes(content)
    args = [command] + ([str(csv_file)] if command == "replay" else [])
    result = cli(path, *args)
    assert result.exit_code == 1
    [line] = error_lines(result)
    assert line.startswith(f"error: {path}: ")
    assert len(line) < 400, line[:400]
    assert not (tmp_path / "fw.db").exists()


def test_config_that_is_a_folder_is_one_line(tmp_path):
    folder = tmp_path / "floodwatch.toml"
    folder.mkdir()
    result = cli(folder, "check")
    assert result.exit_code == 1
    [line] = error_lines(result)
    assert line.startswith(f"error: {folder}: cannot read config file")


def test_a_utf8_bom_is_harmless(tmp_path):
    path = write_config(tmp_path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    result = cli(path, "check")
    assert result.exit_code == 0, result.output


# --- bounds on every physical value and duration -------------------------------

N = len(UNITS)  # index of a [[units]] entry appended after the shipped ones
UNIT = '[[units]]\nid = "extra"\nname = "Thêm"\n'
SEA = '[sources.sea]\ntype = "open_meteo_sea_level"\n[sources.sea.stations.ganh_hao]\n'
GAUGE = '[sources.g]\ntype = "http_json"\nurl = "http://127.0.0.1:9/x"\n'
LIMITS = "hard_min = -1.0\nsoft_min = -0.5\nsoft_max = 1.5\nmax_step_change = 0.4\n"
ELEVEN = ", ".join(str(0.1 * i) for i in range(1, 12))
ELEVEN_NAMES = ", ".join(f'"L{i}"' for i in range(1, 12))

BOUNDS = [
    # (id, text before the tables, text after them, dotted key of the one problem)
    ("keep_days-zero", "", "STORAGE keep_readings_days = 0\n", "storage.keep_readings_days"),
    ("keep_days-4000-digits", "", f"STORAGE keep_readings_days = {BIG_DIGITS}\n",
     "storage.keep_readings_days"),
    ("keep_days-1e26", "", "STORAGE keep_readings_days = 1e26\n", "storage.keep_readings_days"),
    ("observed_age-1e26", "", "[assessment]\nobserved_max_age_minutes = 1e26\n",
     "assessment.observed_max_age_minutes"),
    ("drain-zero", "", "[assessment]\ndefault_drain_mm_h = 0.0\n",
     "assessment.default_drain_mm_h"),
    ("drain-1e9", "", "[assessment]\ndefault_drain_mm_h = 1e9\n",
     "assessment.default_drain_mm_h"),
    ("drain-nan", "", "[assessment]\ndefault_drain_mm_h = nan\n",
     "assessment.default_drain_mm_h"),
    ("runoff-inf", "", "[assessment]\nrunoff_concentration = inf\n",
     "assessment.runoff_concentration"),
    ("compound-1e308", "", "[assessment]\ncompound_min_m = 1e308\n",
     "assessment.compound_min_m"),
    ("horizon-4000-digits", "", f"[assessment]\nhorizon_hours = {BIG_DIGITS}\n",
     "assessment.horizon_hours"),
    ("step-true", "", "[assessment]\nstep_minutes = true\n", "assessment.step_minutes"),
    ("threshold-50m", "", "[levels]\nthresholds_m = [0.1, 0.3, 50.0]\n",
     "levels.thresholds_m[2]"),
    ("threshold-nan", "", "[levels]\nthresholds_m = [nan, 0.3, 0.5]\n", "levels.thresholds_m[0]"),
    ("threshold-minus-inf", "", "[levels]\nthresholds_m = [-inf, 0.3, 0.5]\n",
     "levels.thresholds_m[0]"),
    ("thresholds-eleven", "", f"[levels]\nthresholds_m = [{ELEVEN}]\nnames = [{ELEVEN_NAMES}]\n",
     "levels.thresholds_m"),
    ("thresholds-a-string", "", '[levels]\nthresholds_m = "0.1"\n', "levels.thresholds_m"),
    ("hysteresis-nan", "", "[levels]\nhysteresis_m = nan\n", "levels.hysteresis_m"),
    ("close_after-1e26", "", "[events]\nclose_after_minutes = 1e26\n",
     "events.close_after_minutes"),
    ("close_after-two-weeks", "", "[events]\nclose_after_minutes = 20160\n",
     "events.close_after_minutes"),
    ("close_after-negative", "", "[events]\nclose_after_minutes = -1\n",
     "events.close_after_minutes"),
    ("close_after-true", "", "[events]\nclose_after_minutes = true\n",
     "events.close_after_minutes"),
    ("shift-99999-min", "", "[events]\nforecast_shift_minutes = 99999\n",
     "events.forecast_shift_minutes"),
    ("shift-depth-inf", "", "[events]\nforecast_shift_depth_m = inf\n",
     "events.forecast_shift_depth_m"),
    ("shift-depth-100m", "", "[events]\nforecast_shift_depth_m = 100.0\n",
     "events.forecast_shift_depth_m"),
    ("events-not-a-table", "events = 5\n", "", "events"),
    ("rain-1e300", "", "[rain]\ncategories_mm_24h = [16.0, 51.0, 1e300]\n",
     "rain.categories_mm_24h[2]"),
    ("rain-nan", "", "[rain]\ncategories_mm_24h = [nan, 51.0, 100.0]\n",
     "rain.categories_mm_24h[0]"),
    ("escalate-1e6-min", "", UNIT + "escalate_after_minutes = 1000000\n",
     f"units[{N}].escalate_after_minutes"),
    ("chat-4000-digits", "", UNIT + f"telegram_chats = [-{BIG_DIGITS}]\n",
     f"units[{N}].telegram_chats[0]"),
    ("chat-2e70", "", UNIT + f"telegram_chats = [{-(2**70)}]\n", f"units[{N}].telegram_chats[0]"),
    ("thread-zero", "", UNIT + "thread_id = 0\n", f"units[{N}].thread_id"),
    ("thread-2e40", "", UNIT + f"thread_id = {2**40}\n", f"units[{N}].thread_id"),
    ("unit-name-nul", "", '[[units]]\nid = "extra"\nname = "a\\u0000b"\n', f"units[{N}].name"),
    ("unit-id-newline", "", '[[units]]\nid = "ex\\ntra"\nname = "Thêm"\n', f"units[{N}].id"),
    ("telegram-timeout-1e9", "", "[telegram]\ntimeout_s = 1e9\n", "telegram.timeout_s"),
    ("telegram-timeout-nan", "", "[telegram]\ntimeout_s = nan\n", "telegram.timeout_s"),
    ("user-2e64", "", f"[telegram]\nallowed_users = [{2**64}]\n", "telegram.allowed_users[0]"),
    ("user-negative", "", "[telegram]\nallowed_users = [-5]\n", "telegram.allowed_users[0]"),
    ("operators-chat-2e70", "", f"[telegram]\noperators_chats = [{2**70}]\n",
     "telegram.operators_chats[0]"),
    ("operators-thread-negative", "", "[telegram]\noperators_thread_id = -1\n",
     "telegram.operators_thread_id"),
    ("repeat-1e9-min", "", "[alerts]\nrepeat_interval_minutes = 1000000000\n",
     "alerts.repeat_interval_minutes"),
    ("backoff-inf", "", "[http]\nbackoff_s = inf\n", "http.backoff_s"),
    ("max-backoff-1e9", "", "[http]\nmax_backoff_s = 1e9\n", "http.max_backoff_s"),
    ("retry-after-nan", "", "[http]\nmax_retry_after_s = nan\n", "http.max_retry_after_s"),
    ("standby-1e26", "", "[service]\nstandby_check_seconds = 1e26\n",
     "service.standby_check_seconds"),
    ("feed-days-4000-digits", "", f"[cap]\nfeed_days = {BIG_DIGITS}\n", "cap.feed_days"),
    ("interval-1e26", "", '[sources.t]\ntype = "harmonic"\ninterval_minutes = 1e26\n',
     "sources.t.interval_minutes"),
    ("interval-zero", "", '[sources.t]\ntype = "harmonic"\ninterval_minutes = 0\n',
     "sources.t.interval_minutes"),
    ("stale-1e7-min", "", '[sources.t]\ntype = "harmonic"\nstale_after_minutes = 10000000\n',
     "sources.t.stale_after_minutes"),
    ("source-timeout-1e6", "", '[sources.t]\ntype = "harmonic"\ntimeout_s = 1e6\n',
     "sources.t.timeout_s"),
    ("source-timeout-nan", "", '[sources.t]\ntype = "harmonic"\ntimeout_s = nan\n',
     "sources.t.timeout_s"),
    ("sea-offset-minus-1e308", "", SEA + "lat = 9.0\nlon = 105.4\noffset_m = -1e308\n",
     "sources.sea.stations.ganh_hao.offset_m"),
    ("sea-gain-nan", "", SEA + "lat = 9.0\nlon = 105.4\ngain = nan\n",
     "sources.sea.stations.ganh_hao.gain"),
    ("sea-gain-zero", "", SEA + "lat = 9.0\nlon = 105.4\ngain = 0.0\n",
     "sources.sea.stations.ganh_hao.gain"),
    ("sea-lag-1e9", "", SEA + "lat = 9.0\nlon = 105.4\nlag_minutes = 1000000000\n",
     "sources.sea.stations.ganh_hao.lag_minutes"),
    ("sea-lat-nan", "", SEA + "lat = nan\nlon = 105.4\n", "sources.sea.stations.ganh_hao.lat"),
    ("gauge-scale-zero", "", GAUGE + "scale = 0.0\n", "sources.g.scale"),
    ("gauge-scale-1e300", "", GAUGE + "scale = 1e300\n", "sources.g.scale"),
    ("gauge-missing-nan", "", GAUGE + "missing = [nan]\n", "sources.g.missing[0]"),
    ("limits-inf", "", "[validation.water_level]\nhard_max = inf\n" + LIMITS,
     "validation.water_level.hard_max"),
    ("limits-100m", "", "[validation.water_level]\nhard_max = 100.0\n" + LIMITS, "validation"),
    ("flat-hours-1e6", "", "[validation.rainfall]\nhard_min = 0.0\nhard_max = 300.0\n"
     "soft_min = 0.0\nsoft_max = 150.0\nmax_step_change = 200.0\nflat_hours = 1000000\n",
     "validation.rainfall.flat_hours"),
    ("station-step-negative", "", "[validation.stations.tp_ca_mau.water_level]\n"
     "hard_min = -1.0\nhard_max = 3.0\nsoft_min = -0.5\nsoft_max = 1.5\nmax_step_change = -1.0\n",
     "validation.stations.tp_ca_mau.water_level.max_step_change"),
    ("timezone-10000-chars", f'timezone = "{"x" * 10_000}"\n', "", "timezone"),
    ("timezone-nul", 'timezone = "Asia/Ho_Chi_Minh\\u0000"\n', "", "timezone"),
    ("timezone-traversal", 'timezone = "../../../etc/passwd"\n', "", "timezone"),
    ("units-a-string", 'units = "so_xay_dung"\n', "", "units"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("top", "extra", "key"), [b[1:] for b in BOUNDS], ids=[b[0] for b in BOUNDS]
)
def test_out_of_bounds_value_is_one_line_naming_the_key(tmp_path, top, extra, key):
    storage = extra.removeprefix("STORAGE ") if extra.startswith("STORAGE ") else ""
    path = write_config(tmp_path, top=top, storage=storage, extra="" if storage else extra)
    if top.startswith("units"):  # `units = …` cannot stand beside [[units]] tables
        text = config_text(f"sqlite:///{tmp_path / 'fw.db'}", top=top)
        path.write_text(text.split("[[units]]")[0], encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    [line] = info.value.problems
    assert line.startswith(f"{path}: {key}: "), line
    assert len(line) < 400, line[:400]


def test_check_reports_an_out_of_bounds_value_and_exits_1(tmp_path):
    extra = "[events]\nclose_after_minutes = 1e26\nforecast_shift_minutes = 1441\n"
    path = write_config(tmp_path, extra=extra)
    result = cli(path, "check")
    assert result.exit_code == 1
    assert error_lines(result) == [
        f"error: {path}: events.close_after_minutes: number too large for a whole number",
        f"error: {path}: events.forecast_shift_minutes: Input should be less than or equal to 1440",
    ]


# --- the database: `check` refuses what `run` would refuse ---------------------


def storage_cases(tmp_path: Path) -> dict[str, tuple[str, Path | None]]:
    """URL of each case, and a path that must not exist afterwards."""
    regular = tmp_path / "a-file"
    regular.write_text("not a folder", encoding="utf-8")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    return {
        "no-scheme": ("floodwatch.db", None),
        "unknown-kind": ("nosuchdb://u@h/db", None),
        "no-driver": ("mysql://u@h/db", None),
        "no-async-driver": ("postgresql+asyncpg://u@h/db", None),
        "bad-port": ("postgresql+psycopg://u:secret@h:notaport/db", None),
        "under-a-file": (f"sqlite:///{regular}/sub/fw.db", regular / "sub"),
        "under-proc": ("sqlite:////proc/floodwatch/fw.db", None),
        "in-proc": ("sqlite:////proc/fw.db", None),
        "a-folder": (f"sqlite:///{folder}", None),
        "timeout-nan": (f"sqlite:///{tmp_path / 'x.db'}?timeout=nan", tmp_path / "x.db"),
        "timeout-text": (f"sqlite:///{tmp_path / 'x.db'}?timeout=soon", tmp_path / "x.db"),
    }


STORAGE_IDS = [
    "no-scheme", "unknown-kind", "no-driver", "no-async-driver", "bad-port", "under-a-file",
    "under-proc", "in-proc", "a-folder", "timeout-nan", "timeout-text",
]  # fmt: skip


@pytest.mark.parametrize("command", ["check", "replay", "poll"])
@pytest.mark.parametrize("case", STORAGE_IDS)
def test_database_run_cannot_open_is_one_line_in_check_and_run(tmp_path, csv_file, case, command):
    url, must_not_exist = storage_cases(tmp_path)[case]
    path = write_config(tmp_path / "etc", url)
    args = [command] + ([str(csv_file)] if command == "replay" else [])
    result = cli(path, *args)
    assert result.exit_code == 1, result.output
    [line] = error_lines(result)
    assert "storage.database_url" in line, line
    assert "secret" not in line
    if must_not_exist is not None:
        assert not must_not_exist.exists()


def test_environment_database_url_is_checked_too(tmp_path):
    path = write_config(tmp_path)
    result = cli(path, "check", env={"FLOODWATCH_DATABASE_URL": "sqlite:////proc/x/fw.db"})
    assert result.exit_code == 1
    [line] = error_lines(result)
    assert "storage.database_url" in line and "/proc" in line


def test_check_creates_no_database_folder(tmp_path):
    target = tmp_path / "new" / "deeper" / "fw.db"
    path = write_config(tmp_path / "etc", f"sqlite:///{target}")
    result = cli(path, "check")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "new").exists()
    assert os.listdir(tmp_path / "etc") == ["floodwatch.toml"]


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ('[sources.drop]\ntype = "drop_folder"\npath = "FILE/sub"\n', "sources.drop.path"),
        ('[sources.tide]\ntype = "harmonic"\nconstituents = "nowhere"\n',
         "sources.tide.constituents"),
        ('[sources.g]\ntype = "http_json"\nurl = "http://127.0.0.1:9/x"\n'
         'auth_env = "NO_SUCH_VAR"\n', "sources.g.auth_env"),
        ('[sources.g]\ntype = "http_json"\nurl = "http://127.0.0.1:9/{station}"\n'
         '[sources.g.stations]\nx = "atlantis"\n', "sources.g.stations"),
    ],
    ids=["drop-folder-under-a-file", "tide-folder-missing", "token-variable-unset",
         "gauge-unknown-station"],
)  # fmt: skip
def test_check_refuses_the_sources_run_would_refuse(tmp_path, extra, key):
    regular = tmp_path / "a-file"
    regular.write_text("x", encoding="utf-8")
    path = write_config(tmp_path / "etc", extra=extra.replace("FILE", str(regular)))
    for args in (["check"], ["poll"]):  # replay builds no sources
        result = cli(path, *args)
        assert result.exit_code == 1, (args, result.output)
        lines = error_lines(result)
        assert len(lines) == 1 and key in lines[0], (args, lines)
