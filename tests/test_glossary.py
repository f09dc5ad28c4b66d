"""One Vietnamese glossary: every key the code stores or sends has a word, every surface a
person reads shows the word (never the raw English key), and docs/glossary.md lists them."""

from __future__ import annotations

import ast
import io
import logging
import re
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import select

from floodwatch.cli.main import main
from floodwatch.core import health
from floodwatch.core.depth import CAUSE_NAMES
from floodwatch.core.events import EventStatus
from floodwatch.core.readings import Kind, Variable
from floodwatch.core.text import VOCABULARIES, label, labels
from floodwatch.db import outbox
from floodwatch.db.models import AlertRow, DeliveryRow, EventChangeRow, EventNoteRow, EventRow
from floodwatch.messages.alerts import HEADLINE
from floodwatch.service import views
from floodwatch.service.daily import bulletin_text
from floodwatch.service.outlook import unit_roads
from floodwatch.telegram.commands import Commands
from tests import test_web
from tests.test_web import CUT, log_in

fw_app, client = test_web.fw_app, test_web.client  # fixtures: a replayed spring tide
ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "floodwatch"

# Raw keys that must never be read as words in Vietnamese text. "tide", "rain", "forecast"
# and "ok" are left out: they are also the names of the shipped sources ([sources.tide]…),
# which are configuration, shown as named.
RAW_KEYS = (
    "receded", "degraded", "onset", "level_up", "level_down", "all_clear", "opened", "closed",
    "stale", "failing", "pending", "flooded", "receding", "observed", "compound", "reflooded",
    "forecast_update", "forecast_updated", "forecast_cancelled", "expired", "cancelled",
    "confirmed", "muted", "broken", "false_alarm", "false_alarm_cleared", "water_level",
    "rainfall", "never", "reminder", "daily_bulletin", "no_data", "data_back",
    "segment_removed", "doubtful_reading", "field_report", "heartbeat", "sent",
)  # fmt: skip
RAW = re.compile(r"(?<![\w/.#-])(" + "|".join(RAW_KEYS) + r")(?![\w/.-])")
# Wording the glossary settled: a quiet station is "mất tín hiệu", an unknown value
# "không có dữ liệu"; "mất dữ liệu" is neither.
RETIRED = ("mất dữ liệu",)


def raw_words(text: str) -> list[str]:
    """The raw English keys (and retired wordings) that appear as words in `text`."""
    return RAW.findall(text) + [w for w in RETIRED if w in text]


class _Text(HTMLParser):
    """The text a person reads on a page: text nodes, titles and alt texts, no scripts."""

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        for name, value in attrs:
            if name in ("alt", "title", "placeholder", "aria-label") and value:
                self.parts.append(value)

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def page_text(html: str) -> str:
    """What a person reads on a page."""
    parser = _Text()
    parser.feed(html)
    return "\n".join(parser.parts)


# --- every key has a word ---------------------------------------------------------------


def _call_name(node: ast.Call) -> str:
    """The called function's last name (`x.y.f(...)` → "f")."""
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _strings(node: ast.AST | None, names: dict[str, list[str]]) -> list[str]:
    """String constants of a node: itself, the items of a list/tuple/set literal, both sides
    of `a if … else b`, or what a local name was assigned (`names`)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return [s for item in node.elts for s in _strings(item, names)]
    if isinstance(node, ast.IfExp):
        return _strings(node.body, names) + _strings(node.orelse, names)
    if isinstance(node, ast.Name):
        return names.get(node.id, [])
    return []


def _assigned(tree: ast.AST) -> dict[str, list[str]]:
    """Per simple name in a module, the strings assigned to it (`kind = "a" if x else "b"`)."""
    names: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                names.setdefault(target.id, []).extend(_strings(node.value, {}))
    return names


def _arg(node: ast.Call, index: int, keyword: str) -> ast.AST | None:
    """A call's positional argument or keyword."""
    if len(node.args) > index:
        return node.args[index]
    return next((k.value for k in node.keywords if k.arg == keyword), None)


# (vocabulary, function, positional index, keyword) of the calls that name a key.
KEY_ARGUMENTS = (
    ("change", "Change", 1, "change"),
    ("alert", "Change", 4, "alert"),
    ("change", "_close", 2, "reason"),
    ("close_reason", "_close", 2, "reason"),
    ("alert", "_close", 4, "alert"),
    ("alert", "NewAlert", 2, "kinds"),
    ("alert", "_operators_alert", 2, "kind"),
    ("alert", "_tell_operators", 0, "kind"),
    ("note", "add_note", 3, "kind"),
    ("close_reason", "replace", 99, "close_reason"),
)


def keys_in_code() -> dict[str, set[str]]:
    """Every key the code writes, per vocabulary: from the calls that make changes, alerts,
    notes and closings, and from the enums and constants that name the others."""
    found: dict[str, set[str]] = {name: set() for name in VOCABULARIES}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = _assigned(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            for vocabulary, function, index, keyword in KEY_ARGUMENTS:
                if _call_name(node) == function:
                    found[vocabulary].update(_strings(_arg(node, index, keyword), names))
    found["change"].discard("")  # a silent step of the state machine: never stored
    found["status"].update(s.value for s in EventStatus)
    found["kind"].update(k.value for k in Kind)
    found["variable"].update(v.value for v in Variable)
    found["cause"].update(CAUSE_NAMES.values())
    found["alert"].update(HEADLINE)
    found["delivery"].update(
        (outbox.PENDING, outbox.SENT, outbox.CONSOLE, outbox.BROKEN, outbox.FAILED, outbox.MUTED)
    )
    found["source_status"].update(
        (health.OK, health.DEGRADED, health.FAILING, health.STALE, views.NEVER)
    )
    found["note"].add("note")
    found["alarm"].update(range(4))
    found["target"].update(("segment", "unit"))
    return found


def test_every_key_the_code_uses_has_a_vietnamese_word():
    found = keys_in_code()
    # The scan does see the calls (a broken scan would pass vacuously).
    assert {"opened", "level_up", "closed", "expired", "cancelled", "reminder"} <= found["change"]
    assert {"onset", "all_clear", "no_data", "chat_broken", "daily_bulletin"} <= found["alert"]
    assert {"receded", "removed"} <= found["close_reason"]
    assert {"ack", "false_alarm", "false_alarm_cleared"} <= found["note"]
    missing = {
        vocabulary: sorted(map(str, keys - set(VOCABULARIES[vocabulary])))
        for vocabulary, keys in found.items()
        if keys - set(VOCABULARIES[vocabulary])
    }
    assert not missing, f"keys without a Vietnamese word in core/text.py: {missing}"
    for vocabulary, words in VOCABULARIES.items():
        for key, word in words.items():
            assert word and not raw_words(word), (vocabulary, key, word)


def test_every_stored_value_has_a_word(fw_app):
    """Every status, kind, cause, reason, change, alert kind and delivery state in a
    replayed spring tide's database has a word."""
    columns = {
        "status": [EventRow.status, EventChangeRow.status],
        "kind": [EventRow.kind],
        "cause": [EventRow.cause],
        "close_reason": [EventRow.close_reason],
        "change": [EventChangeRow.change],
        "delivery": [AlertRow.status, DeliveryRow.status],
        "note": [EventNoteRow.kind],
    }
    with fw_app.store.engine.connect() as conn:
        for vocabulary, cols in columns.items():
            for col in cols:
                for (value,) in conn.execute(select(col).distinct()):
                    if value:
                        assert value in VOCABULARIES[vocabulary], (vocabulary, value)
        kinds = {k for (row,) in conn.execute(select(AlertRow.kinds)) for k in row}
    assert kinds and kinds <= set(VOCABULARIES["alert"]), kinds - set(VOCABULARIES["alert"])


def test_unknown_key_shows_as_itself_logged_once(caplog):
    caplog.set_level(logging.WARNING, logger="floodwatch.core.text")
    assert label("status", "closed") == "đã kết thúc"
    assert label("status", None) == "—" and label("cause", "", empty="") == ""
    assert label("alarm", 3) == "BĐ III"
    assert labels("alert", ["onset", "level_up"]) == "bắt đầu ngập, ngập sâu thêm"
    assert label("status", "flying-test-key") == "flying-test-key"
    assert label("status", "flying-test-key") == "flying-test-key"
    warned = [r for r in caplog.records if "flying-test-key" in r.getMessage()]
    assert len(warned) == 1


def glossary_section() -> str:
    """The Vietnamese words section docs/glossary.md must hold, from the dicts."""
    titles = {
        "status": "Event status", "cause": "Cause", "kind": "Event and reading kind",
        "variable": "Variable", "alarm": "Alarm level of a station", "change": "Event change",
        "close_reason": "Why an event closed", "alert": "Alert kind",
        "delivery": "Alert and delivery status", "source_status": "Source and input health",
        "note": "Operator's note", "target": "What a silence mutes",
        "skill": "Backtest verdict",
    }  # fmt: skip
    lines = []
    for vocabulary, words in VOCABULARIES.items():
        lines += [f"### {titles[vocabulary]} (`{vocabulary}`)", "", "| key | Vietnamese |"]
        lines += ["|---|---|"] + [f"| `{key}` | {word} |" for key, word in words.items()] + [""]
    return "\n".join(lines)


def test_glossary_doc_lists_the_words_of_the_code():
    doc = (ROOT / "docs" / "glossary.md").read_text(encoding="utf-8")
    assert glossary_section() in doc, (
        "docs/glossary.md: the Vietnamese words section differs from core/text.py; "
        "it should read:\n\n" + glossary_section()
    )


# --- no raw key on any surface ------------------------------------------------------------


def test_web_pages_show_words_not_keys(client, fw_app):
    assert log_in(client).status_code == 303
    events = client.get("/api/v1/events", params={"limit": 1000}).json()["events"]
    closed = next(e["id"] for e in events if e["status"] == "closed")
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get(f"/events/{closed}").text)[1]
    client.post(f"/events/{closed}/note", data={"csrf": csrf, "text": "nước rút chậm"})
    client.post(f"/events/{closed}/ack", data={"csrf": csrf})
    client.post(f"/events/{closed}/false-alarm", data={"csrf": csrf, "value": "on"})
    client.post(f"/events/{closed}/false-alarm", data={"csrf": csrf, "value": "off"})
    urls = ["/", "/?at=" + quote(CUT.isoformat()), "/log", "/maintenance"]
    urls += [f"/events/{e['id']}" for e in events]
    urls += [f"/roads/{s.id}" for s in fw_app.geodata.segments]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert not raw_words(page_text(response.text)), (url, raw_words(page_text(response.text)))
    page = page_text(client.get(f"/events/{closed}").text)
    assert "bắt đầu ngập" in page and "hết ngập" in page  # the alert kinds, in words
    assert "(nước đã rút)" in page  # why it closed
    assert "Đánh dấu báo nhầm" in page and "Bỏ đánh dấu báo nhầm" in page


def test_bot_replies_show_words_not_keys(fw_app):
    commands = Commands(fw_app, clock=lambda: CUT)
    for unit in (None, "ubnd_an_xuyen"):
        flooded, expected = unit_roads(fw_app, unit)
        unknown, quiet = commands.unknown_now(unit)
        text = commands.status_text(unit, flooded, expected, unknown, quiet)
        assert flooded and not raw_words(text), raw_words(text)
    fw_app.store.silences.add("unit", "ubnd_an_xuyen", CUT, CUT + timedelta(hours=2), "", "t")
    listing = commands.silences_text(fw_app.store.silences.listing(CUT))
    assert "UBND phường An Xuyên" in listing and not raw_words(listing)


def test_messages_show_words_not_keys(fw_app):
    with fw_app.store.engine.connect() as conn:
        bodies = [body for (body,) in conn.execute(select(AlertRow.body))]
    assert bodies
    bodies.append(bulletin_text(fw_app, CUT))
    for body in bodies:
        assert not raw_words(body), (raw_words(body), body)


def cli_output(config: Path, *args: str) -> str:
    """A CLI command's output, after checking it succeeded."""
    result = CliRunner().invoke(main, ["--config", str(config), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_tables_show_words_and_machine_formats_keep_keys(fw_app, project):
    at = ("--at", CUT.isoformat())
    status = cli_output(project, "status", *at)
    sources = cli_output(project, "sources", *at)
    events = cli_output(project, "events")
    for text in (status, sources, events):
        assert not raw_words(text), raw_words(text)
    assert "đang ngập" in status and "triều cường" in status
    assert "đã kết thúc" in events and "quan trắc" in events
    # Machine formats keep the English keys.
    assert '"status": "closed"' in cli_output(project, "events", "--format", "json")
    assert ",closed," in cli_output(project, "events", "--format", "csv")


def test_exports_show_words_not_keys(fw_app, project, tmp_path):
    csv_file, xlsx_file = tmp_path / "e.csv", tmp_path / "e.xlsx"
    for fmt, path in (("csv", csv_file), ("xlsx", xlsx_file)):
        cli_output(project, "export", "events", "--format", fmt, "-o", str(path))
    text = csv_file.read_text(encoding="utf-8-sig")
    assert "đã kết thúc" in text and "triều cường" in text and not raw_words(text)
    sheet = load_workbook(io.BytesIO(xlsx_file.read_bytes())).active
    cells = " ".join(str(c) for row in sheet.iter_rows(values_only=True) for c in row if c)
    assert "đã kết thúc" in cells and not raw_words(cells)
