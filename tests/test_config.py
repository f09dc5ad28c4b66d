"""Config loading: defaults, one line per mistake (all at once), overrides, path resolution."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from floodwatch.cli import main
from floodwatch.config import (
    AssessmentSettings,
    EventSettings,
    LevelSettings,
    RainSettings,
    Settings,
    load_settings,
)
from floodwatch.errors import ConfigError

CONTRACT = """\
[storage]
database_url = "sqlite:///x.db"

[geodata]
segments = "geo/segments.geojson"
stations = "geo/stations.geojson"

[[units]]
id = "so_xay_dung"
name = "Sở Xây dựng"
"""


def write(tmp_path: Path, text: str, name: str = "floodwatch.toml") -> Path:
    """Write a config file and return its path."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path, env: dict[str, str] | None = None) -> list[str]:
    """The problem lines a config file raises."""
    with pytest.raises(ConfigError) as info:
        load_settings(path, env=env or {})
    return info.value.problems


def test_contract_keys_alone_are_valid_and_the_rest_is_default(tmp_path):
    settings = load_settings(write(tmp_path, CONTRACT), env={})
    assert settings.storage.database_url == "sqlite:///x.db"
    assert [(u.id, u.name) for u in settings.units] == [("so_xay_dung", "Sở Xây dựng")]
    assert settings.timezone == "Asia/Ho_Chi_Minh"
    assert settings.assessment == AssessmentSettings()
    assert settings.assessment.step_minutes == 60
    assert settings.levels == LevelSettings()
    assert settings.levels.thresholds_m == [0.10, 0.30, 0.50]
    assert settings.events == EventSettings()
    assert settings.rain == RainSettings()
    assert settings.sources == {}


def test_relative_geodata_paths_resolve_against_the_config_folder(tmp_path):
    folder = tmp_path / "etc" / "floodwatch"
    folder.mkdir(parents=True)
    settings = load_settings(write(folder, CONTRACT), env={})
    assert settings.resolve(settings.geodata.segments) == folder / "geo" / "segments.geojson"
    assert settings.resolve(settings.geodata.stations) == folder / "geo" / "stations.geojson"
    absolute = tmp_path / "elsewhere.geojson"
    assert settings.resolve(absolute) == absolute


def test_environment_database_url_overrides_the_file(tmp_path):
    path = write(tmp_path, CONTRACT)
    url = "postgresql+psycopg://u@db/floodwatch"
    assert load_settings(path, env={"FLOODWATCH_DATABASE_URL": url}).storage.database_url == url
    assert load_settings(path, env={}).storage.database_url == "sqlite:///x.db"


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ('colour = "blue"\n', "colour"),
        ("[assessment]\nstepminutes = 5\n", "assessment.stepminutes"),
        ('[[units]]\nid = "b"\nname = "B"\nchat = 1\n', "units[1].chat"),
    ],
)
def test_unknown_key_is_one_line_naming_file_and_dotted_key(tmp_path, extra, key):
    # Top-level keys must precede the first table, so unknown top-level keys go first.
    text = extra + CONTRACT if not extra.startswith("[") else CONTRACT + extra
    path = write(tmp_path, text)
    assert problems_of(path) == [f"{path}: {key}: unknown key"]


def test_wrong_type_names_the_key(tmp_path):
    path = write(tmp_path, CONTRACT + '[assessment]\nhorizon_hours = "three days"\n')
    [line] = problems_of(path)
    assert line.startswith(f"{path}: assessment.horizon_hours: ")


def test_several_mistakes_are_reported_all_at_once(tmp_path):
    text = (
        'timezone = "Asia/Hanoi_City"\n'
        + CONTRACT
        + '[assessment]\nstepminutes = 5\nhorizon_hours = "x"\n'
        + "[events]\nclose_after = 3\n"
    )
    path = write(tmp_path, text)
    lines = problems_of(path)
    assert len(lines) == 4, lines
    assert all(line.startswith(f"{path}: ") for line in lines)
    keys = {line.split(": ")[1] for line in lines}
    assert keys == {
        "timezone",
        "assessment.stepminutes",
        "assessment.horizon_hours",
        "events.close_after",
    }


def test_bad_toml_is_one_line(tmp_path):
    path = write(tmp_path, CONTRACT + "[assessment\nstep_minutes = 60\n")
    [line] = problems_of(path)
    assert line.startswith(f"{path}: not valid TOML")


def test_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    assert problems_of(path) == [f"{path}: config file not found"]


def test_unknown_timezone(tmp_path):
    path = write(tmp_path, 'timezone = "Asia/Saigon_Old"\n' + CONTRACT)
    assert problems_of(path) == [f"{path}: timezone: unknown time zone 'Asia/Saigon_Old'"]


def test_duplicate_unit_id(tmp_path):
    path = write(tmp_path, CONTRACT + '[[units]]\nid = "so_xay_dung"\nname = "Again"\n')
    assert problems_of(path) == [f"{path}: units: unit id 'so_xay_dung' is defined twice"]


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        (
            'thresholds_m = [0.30, 0.10, 0.50]\nnames = ["a", "b", "c"]\n',
            "thresholds_m must be positive and strictly increasing",
        ),
        ('thresholds_m = [0.10, 0.30]\nnames = ["a", "b", "c"]\n', "names has 3 entries for 2"),
    ],
)
def test_inconsistent_levels(tmp_path, levels, message):
    path = write(tmp_path, CONTRACT + "[levels]\n" + levels)
    [line] = problems_of(path)
    assert line.startswith(f"{path}: levels: ")
    assert message in line


def test_unknown_source_type(tmp_path):
    path = write(tmp_path, CONTRACT + '[sources.ioc]\ntype = "ioc"\n')
    assert problems_of(path) == [
        f"{path}: sources.ioc: unknown source type 'ioc' (known: harmonic, open_meteo_rain, "
        "open_meteo_sea_level, http_json, drop_folder)"
    ]


def test_harmonic_source_is_parsed(tmp_path):
    settings = load_settings(
        write(tmp_path, CONTRACT + '[sources.tide]\ntype = "harmonic"\ninterval_minutes = 30\n'),
        env={},
    )
    assert settings.sources["tide"].interval_minutes == 30
    assert isinstance(settings, Settings)


def check(config: Path):
    """Run `floodwatch --config X check`."""
    return CliRunner().invoke(main, ["--config", str(config), "check"])


def test_check_reports_every_problem_on_stderr_and_exits_1(tmp_path):
    path = write(
        tmp_path,
        'timezone = "Nowhere/Town"\n' + CONTRACT + "[assessment]\nstepminutes = 5\n",
    )
    result = check(path)
    assert result.exit_code == 1
    errors = result.stderr.splitlines()
    assert len(errors) == 2, result.stderr
    assert all(line.startswith(f"error: {path}: ") for line in errors)
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_check_missing_config_is_one_line(tmp_path):
    result = check(tmp_path / "missing.toml")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: {tmp_path / 'missing.toml'}: config file not found"
    ]
    assert "Traceback" not in result.output


def test_check_missing_geodata_files_names_each_key(tmp_path):
    path = write(tmp_path, CONTRACT)
    result = check(path)
    assert result.exit_code == 1
    errors = result.stderr.splitlines()
    assert len(errors) == 2
    assert "geodata.segments: file not found" in errors[0]
    assert "geodata.stations: file not found" in errors[1]


def test_shipped_config_checks_ok(project):
    result = check(project)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok:")
