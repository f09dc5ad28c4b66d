"""The docs stay true (in the manner of sqlite-utils' test_docs.py).

Every command is in the README's command table and has help; the
architecture table lists exactly the packages and modules that exist, and
each package says its job in its docstring; every config key is in
docs/configuration.md, in its table's section.
"""

from __future__ import annotations

import ast
import re
from typing import get_args

import click
import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from floodwatch.cli import main
from floodwatch.config import Settings, SourceSettings
from floodwatch.sources import SourceSettingsBase
from tests.conftest import ROOT

PACKAGE = ROOT / "floodwatch"
README = (ROOT / "README.md").read_text(encoding="utf-8")
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")


def _commands(group: click.Group, prefix: str = "") -> list[str]:
    """Every leaf command, spelled as a user types it ("tide predict")."""
    names = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            names += _commands(command, f"{prefix}{name} ")
        else:
            names.append(f"{prefix}{name}")
    return names


COMMANDS = _commands(main)


def test_the_command_list_is_not_empty():
    assert {"run", "replay", "status", "events", "tide predict", "db upgrade"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_in_the_readme_table(command):
    assert f"| `{command}` |" in README


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_a_summary(command):
    result = CliRunner().invoke(main, [*command.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ") and len(result.output.splitlines()) > 3


def _packages() -> set[str]:
    """`core/`, `db/migrations/`, …: every folder of the package with an __init__.py."""
    return {
        p.parent.relative_to(PACKAGE).as_posix() + "/"
        for p in PACKAGE.rglob("__init__.py")
        if p.parent != PACKAGE
    }


def _modules() -> set[str]:
    """Every module but package __init__ files and migration scripts, relative to the package."""
    return {
        p.relative_to(PACKAGE).as_posix()
        for p in PACKAGE.rglob("*.py")
        if p.name != "__init__.py" and "versions" not in p.parts
    }


def _architecture_names() -> set[str]:
    """The names in the first column of the architecture doc's package and module tables."""
    names = set()
    for line in ARCHITECTURE.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            names |= set(re.findall(r"`([^`]+)`", first))
    return names


def test_the_architecture_table_lists_exactly_the_packages_and_modules():
    documented = _architecture_names()
    actual = _packages() | _modules()
    assert sorted(actual - documented) == [], "missing from docs/architecture.md"
    assert sorted(documented - actual) == [], "in docs/architecture.md but not in the package"


def test_the_readme_shows_the_package_tree():
    section = README.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    for package in sorted(_packages()):
        if package.count("/") == 1:  # top-level packages
            assert f"{package}" in section, package


@pytest.mark.parametrize("package", sorted(_packages()))
def test_every_package_says_its_job_in_its_docstring(package):
    tree = ast.parse((PACKAGE / package / "__init__.py").read_text(encoding="utf-8"))
    docstring = ast.get_docstring(tree)
    assert docstring and len(docstring.splitlines()[0]) > 20, package


def _sections(text: str) -> dict[str, str]:
    """Markdown sections of docs/configuration.md by heading text."""
    parts = re.split(r"^#{2,3} (.+)$", text, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


SECTIONS = _sections(CONFIGURATION)


def _documented(section: str, key: str) -> bool:
    """Whether a table row of the section names the key in its first column.

    A row may name several keys (`hard_min`, `hard_max`) or a sub-table
    (`[validation.water_level]` documents `water_level`).
    """
    for line in SECTIONS.get(section, "").splitlines():
        if line.startswith("| `"):
            for name in re.findall(r"`([^`]+)`", line.split("|")[1]):
                if name == key or re.search(rf"\.{re.escape(key)}(\.|\])", name):
                    return True
    return False


def _fields(model: type[BaseModel]) -> list[str]:
    return [name for name, f in model.model_fields.items() if not f.exclude]


def _config_keys() -> list[tuple[str, str]]:
    """(section heading, key) for every key a config file may set."""
    keys = []
    for name, field in Settings.model_fields.items():
        kind = field.annotation
        if field.exclude or name == "sources":
            continue
        if name == "units":
            keys += [("`[[units]]`", key) for key in _fields(get_args(kind)[0])]
        elif isinstance(kind, type) and issubclass(kind, BaseModel):
            keys += [(f"`[{name}]`", key) for key in _fields(kind)]
            for sub in kind.model_fields.values():  # tables within the table ([validation.x])
                if isinstance(sub.annotation, type) and issubclass(sub.annotation, BaseModel):
                    keys += [(f"`[{name}]`", key) for key in _fields(sub.annotation)]
        else:
            keys.append(("Top level", name))
    base = {"type", *_fields(SourceSettingsBase)}
    keys += [("`[sources.NAME]`", key) for key in sorted(base)]
    for model in get_args(get_args(SourceSettings)[0]):
        [kind] = get_args(model.model_fields["type"].annotation)
        keys += [(f'`type = "{kind}"`', key) for key in _fields(model) if key not in base]
    return keys


CONFIG_KEYS = list(dict.fromkeys(_config_keys()))


def test_the_config_key_list_covers_every_table():
    sections = {section for section, _ in CONFIG_KEYS}
    assert {"`[storage]`", "`[[units]]`", '`type = "http_json"`', "Top level"} <= sections
    assert len(CONFIG_KEYS) > 60


@pytest.mark.parametrize(("section", "key"), CONFIG_KEYS, ids=[f"{s}:{k}" for s, k in CONFIG_KEYS])
def test_every_config_key_is_in_docs_configuration(section, key):
    assert _documented(section, key), f"docs/configuration.md: no row for `{key}` under {section}"
