"""Functions a person can hold in their head: short, and not tangled.

Every function in the package is at most MAX_LINES long (decorators aside) and
below radon's complexity grade D (cyclomatic complexity 21 or more), so the
next person to change one can read it whole. Migration scripts are exempt:
they are written once and never changed.
"""

from __future__ import annotations

import ast

from radon.complexity import cc_rank, cc_visit

from tests.conftest import ROOT

PACKAGE = ROOT / "floodwatch"
MAX_LINES = 60
SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "versions" not in p.parts)


def _where(path, node) -> str:
    return f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"


def test_the_package_is_found():
    assert len(SOURCES) > 50


def test_no_function_is_longer_than_sixty_lines():
    long = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_LINES:
                    long.append(f"{_where(path, node)}: {length} lines")
    assert long == []


def test_no_function_is_grade_d_or_worse():
    tangled = []
    for path in SOURCES:
        for block in cc_visit(path.read_text(encoding="utf-8")):
            if cc_rank(block.complexity) >= "D":
                tangled.append(f"{_where(path, block)}: {cc_rank(block.complexity)}")
    assert tangled == []
