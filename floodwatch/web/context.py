"""What every web route shares: the opened App, templates, login and CSRF checks, formats."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

from fastapi import HTTPException, Request
from fastapi.templating import Jinja2Templates

from floodwatch.core.text import (
    CAUSE_VI,
    KIND_VI,
    STATUS_VI,
    centimetres,
    label,
    labels,
    local_time,
    metres,
)
from floodwatch.core.times import parse_time
from floodwatch.db.events import SORTS, EventFilter
from floodwatch.service.app import App
from floodwatch.service.cycle import utcnow
from floodwatch.web import auth
from floodwatch.web.maps import Basemap, basemap

HERE = Path(__file__).resolve().parent
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
CSRF_MESSAGE = (
    "Mã bảo vệ biểu mẫu (CSRF) không hợp lệ hoặc phiên đã hết hạn. Hãy tải lại trang rồi thử lại."
)


class NeedLogin(Exception):
    """Raised by routes that need an operator; answered by a redirect (or 401 on the API)."""


class BadFilter(Exception):
    """A query parameter that cannot be used: a 400 page in Vietnamese, or a 422 on the API
    naming the parameter (never silently ignored)."""

    def __init__(self, field: str, value: str, message_vi: str, message: str):
        super().__init__(message)
        self.field, self.value, self.message_vi = field, value, message_vi


@dataclass
class WebContext:
    """The application behind the web, and things computed once."""

    app: App
    open_reads: bool
    templates: Jinja2Templates
    _basemap: Basemap | None = field(default=None, repr=False)

    @property
    def zone(self):
        """The display time zone."""
        return self.app.settings.zone

    @property
    def basemap(self) -> Basemap:
        """The projected segments, computed on first use."""
        if self._basemap is None:
            self._basemap = basemap(self.app.geodata)
        return self._basemap

    def unit_name(self, unit_id: str | None) -> str:
        """A unit's Vietnamese name (its id when not configured)."""
        for unit in self.app.settings.units:
            if unit.id == unit_id:
                return unit.name
        return unit_id or "—"

    def level_name(self, level: int | None) -> str:
        """`Mức 2: Ngập nửa bánh xe máy…`, or `—` for 0."""
        names = self.app.settings.levels.names
        if not level:
            return "—"
        return f"Mức {level}: {names[level - 1]}" if level <= len(names) else f"Mức {level}"


def web(request: Request) -> WebContext:
    """The WebContext of this request's application."""
    return request.app.state.web


def reader(request: Request) -> WebContext:
    """Dependency of every read: the context, after the login check when reads are closed."""
    ctx = web(request)
    if not ctx.open_reads and auth.session_user(request.session) is None:
        raise NeedLogin()
    return ctx


def operator(request: Request) -> dict:
    """The logged-in operator, or NeedLogin."""
    user = auth.session_user(request.session)
    if user is None:
        raise NeedLogin()
    return user


def check_csrf(request: Request, token: str | None) -> None:
    """403 unless the form carried this session's CSRF token."""
    if not auth.csrf_ok(request.session, token):
        raise HTTPException(status_code=403, detail=CSRF_MESSAGE)


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to go back to (never another site)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def render(request: Request, name: str, status_code: int = 200, **context):
    """A page with the shared context (user, CSRF token, formats)."""
    ctx = web(request)
    context.update(
        user=auth.session_user(request.session),
        csrf=auth.csrf_token(request.session),
        open_reads=ctx.open_reads,
        web=ctx,
        path=request.url.path,
        full_path=str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
    )
    return ctx.templates.TemplateResponse(request, name, context, status_code=status_code)


def make_templates(zone) -> Jinja2Templates:
    """Jinja2 templates with the Vietnamese formats as filters."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))

    def when(value) -> str:
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return local_time(value, zone)

    env = templates.env
    env.filters.update(
        when=when,
        cm=centimetres,
        metres=metres,
        # The glossary (core/text.py): a key without a word shows as itself, logged once.
        status_vi=lambda s: label("status", s),
        cause_vi=lambda c: label("cause", c),
        kind_vi=lambda k: label("kind", k),
        alarm_vi=lambda a: label("alarm", a),
        note_vi=lambda k: label("note", k),
        change_vi=lambda c: label("change", c),
        delivery_vi=lambda s: label("delivery", s),
        source_vi=lambda s: label("source_status", s),
        reason_vi=lambda r: label("close_reason", r),
        alerts_vi=lambda kinds: labels("alert", kinds or ()),
        variable_vi=lambda v: label("variable", v),
        target_vi=lambda t: label("target", t),
        number=lambda v, digits=1: "—" if v is None else f"{v:.{digits}f}".replace(".", ","),
    )
    return templates


# --- the log's filters, shared by the page, the CSV and the API ---------------

FILTER_KEYS = ("from", "to", "ward", "unit", "road", "level", "cause", "status", "ack", "kind",
               "false_alarm")  # fmt: skip


_VI_TIME_PROBLEM = "không phải là ngày (yyyy-mm-dd) hoặc thời điểm hợp lệ trong 1970–2200"


def parse_day(
    value: str | None, zone, end_of_day: bool = False, field: str = "from"
) -> datetime | None:
    """A typed date or time (floodwatch.core.times: a date alone is that local day, its
    last instant with `end_of_day`); None when empty; BadFilter naming `field` otherwise."""
    if not value:
        return None
    try:
        return parse_time(value, zone, end_of_day=end_of_day)
    except ValueError as exc:
        raise BadFilter(
            field, value, f"«{value[:40]}»: {_VI_TIME_PROBLEM}", f"{value[:40]!r}: {exc}"
        ) from None


def yes_no(value: str | None, field: str = "ack") -> bool | None:
    """`yes` → True, `no` → False, empty → None; BadFilter otherwise."""
    if not value:
        return None
    found = {"yes": True, "no": False}.get(value.lower())
    if found is None:
        raise BadFilter(field, value, "chỉ nhận «yes» hoặc «no»", "must be yes or no")
    return found


def _choice(params: dict[str, str], field: str, allowed) -> str | None:
    """One of `allowed`, or None when empty; BadFilter otherwise."""
    value = params.get(field) or None
    if value is not None and value not in allowed:
        names = ", ".join(sorted(allowed))
        raise BadFilter(field, value, f"chỉ nhận một trong: {names}", f"must be one of {names}")
    return value


def _text(params: dict[str, str], field: str, limit: int = 200) -> str | None:
    """Free text, stripped; BadFilter when too long."""
    value = (params.get(field) or "").strip() or None
    if value is not None and len(value) > limit:
        raise BadFilter(field, value, f"dài quá {limit} ký tự", f"longer than {limit} characters")
    return value


def log_filter(params: dict[str, str], zone) -> EventFilter:
    """The EventFilter of a query string; BadFilter names the first unusable parameter."""
    level = params.get("level") or ""
    if level and not (level.isascii() and level.isdigit() and int(level) <= 10):
        raise BadFilter("level", level, "mức phải là số nguyên 0–10", "must be a whole number 0-10")
    return EventFilter(
        start=parse_day(params.get("from"), zone, field="from"),
        end=parse_day(params.get("to"), zone, end_of_day=True, field="to"),
        ward=_text(params, "ward"),
        unit=_text(params, "unit"),
        road=_text(params, "road"),
        min_level=int(level) if level else None,
        cause=_choice(params, "cause", CAUSE_VI),
        status=_choice(params, "status", STATUS_VI),
        kind=_choice(params, "kind", KIND_VI),
        acknowledged=yes_no(params.get("ack"), "ack"),
        false_alarm=yes_no(params.get("false_alarm"), "false_alarm"),
    )


def filter_params(request: Request) -> dict[str, str]:
    """The non-empty log filters of a request's query string."""
    return {k: request.query_params[k] for k in FILTER_KEYS if request.query_params.get(k)}


def sort_params(request: Request) -> tuple[str, bool]:
    """(sort key, descending) of a request, defaulting to newest first."""
    sort = request.query_params.get("sort", "opened")
    sort = sort if sort in SORTS else "opened"
    return sort, request.query_params.get("desc", "1") != "0"


def query_string(params: dict, **changes) -> str:
    """`?a=b&…` of params with changes applied (None drops a key)."""
    merged = {**params, **changes}
    return urlencode({k: v for k, v in merged.items() if v not in (None, "")})


def now_param(request: Request, ctx: WebContext) -> datetime:
    """`?at=` as a time (for looking back, never ahead of the clock), else now."""
    when = parse_day(request.query_params.get("at"), ctx.zone, field="at")
    now = utcnow()
    if when is None or when > now:
        return now
    return when
