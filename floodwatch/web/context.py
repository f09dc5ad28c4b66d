"""What every web route shares: the opened App, templates, login and CSRF checks, formats."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from fastapi import HTTPException, Request
from fastapi.templating import Jinja2Templates

from floodwatch.core.text import (
    CAUSE_VI,
    CHANGED_VI,
    KIND_VI,
    STATUS_VI,
    Credit,
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
from floodwatch.sources import data_credits
from floodwatch.web import auth
from floodwatch.web.maps import RoadLayer, level_class, read_outline, road_layer

HERE = Path(__file__).resolve().parent
PAGE_SIZE = 50
# `?at=` this far ahead of the server's clock (a phone's clock running fast) is now.
AT_SLACK = timedelta(minutes=5)
MAX_PAGE_SIZE = 500
CSRF_MESSAGE = (
    "Mã bảo vệ biểu mẫu (CSRF) không hợp lệ hoặc phiên đã hết hạn. Hãy tải lại trang rồi thử lại."
)


class NeedLogin(Exception):
    """Raised by routes that need an operator; answered by a redirect (or 401 on the API)."""


class BadFilter(Exception):
    """Query parameters that cannot be used: the page again with a Vietnamese message by each
    field (status 400), or a 422 on the API naming each parameter (never silently ignored).

    `problems` holds every bad parameter of the request (this one first)."""

    def __init__(self, field: str, value: str, message_vi: str, message: str):
        super().__init__(message)
        self.field, self.value, self.message_vi = field, value, message_vi
        self.problems: list[BadFilter] = [self]

    @classmethod
    def of(cls, problems: list[BadFilter]) -> BadFilter:
        """One exception carrying several problems."""
        first = problems[0]
        first.problems = list(problems)
        return first

    def messages_vi(self) -> dict[str, str]:
        """{field: Vietnamese message} of every problem, for the form."""
        return {p.field: p.message_vi for p in self.problems}


# The Vietnamese name of each query parameter, for messages.
FIELD_VI = {
    "from": "Từ ngày", "to": "Đến ngày", "ward": "Phường/xã", "unit": "Đơn vị",
    "road": "Tên đường", "level": "Mức từ", "cause": "Nguyên nhân", "status": "Trạng thái",
    "ack": "Đã xác nhận", "kind": "Loại", "false_alarm": "Báo nhầm", "sort": "Sắp xếp theo",
    "desc": "Thứ tự", "page": "Trang", "per": "Số dòng mỗi trang", "at": "Xem lại lúc",
    "station": "Trạm", "variable": "Đại lượng", "since": "Từ lúc",
}  # fmt: skip


def problem_lines(exc: BadFilter) -> list[str]:
    """One Vietnamese line per bad parameter: `«Từ ngày» (from): «abc» không phải là ngày…`."""
    return [f"«{FIELD_VI.get(p.field, p.field)}» ({p.field}): {p.message_vi}"
            for p in exc.problems]  # fmt: skip


class Checks:
    """Runs each parameter's parser, keeping every BadFilter; `done()` raises them together."""

    def __init__(self):
        self.problems: list[BadFilter] = []

    def __call__(self, parse, *args, **kwargs):
        """parse(*args, **kwargs), or None after noting its BadFilter."""
        try:
            return parse(*args, **kwargs)
        except BadFilter as exc:
            self.problems.extend(exc.problems)
            return None

    def done(self) -> None:
        """Raise the problems found, if any."""
        if self.problems:
            raise BadFilter.of(self.problems)


@dataclass
class WebContext:
    """The application behind the web, and things computed once."""

    app: App
    open_reads: bool
    templates: Jinja2Templates
    _roads: RoadLayer | None = field(default=None, repr=False)
    _outline: tuple[dict | None] | None = field(default=None, repr=False)
    _credits: list[Credit] | None = field(default=None, repr=False)

    @property
    def zone(self):
        """The display time zone."""
        return self.app.settings.zone

    @property
    def road_layer(self) -> RoadLayer:
        """The map's road lines (GeoJSON), computed on first use."""
        if self._roads is None:
            self._roads = road_layer(self.app.geodata)
        return self._roads

    @property
    def outline(self) -> dict | None:
        """The map's outline (`[geodata] outline`: coast, rivers), read on first use."""
        if self._outline is None:
            path = self.app.settings.geodata.outline
            self._outline = (read_outline(self.app.settings.resolve(path) if path else None),)
        return self._outline[0]

    @property
    def credits(self) -> list[Credit]:
        """Whose data the pages show (the footer), from the enabled sources, read once."""
        if self._credits is None:
            self._credits = data_credits(self.app.settings)
        return self._credits

    @property
    def tile_origin(self) -> str | None:
        """Where the map's basemap tiles come from (`https://tile.openstreetmap.org`), for
        the Content-Security-Policy's img-src; None without tiles."""
        return self.app.settings.web.tile_origin

    def unit_name(self, unit_id: str | None) -> str:
        """A unit's Vietnamese name (its id when not configured)."""
        for unit in self.app.settings.units:
            if unit.id == unit_id:
                return unit.name
        return unit_id or "—"

    def level_css(self, level: int | None) -> str:
        """CSS classes of a depth level: `lvl-3 tone-red` (the messages' colour rule)."""
        return level_class(level or 0, len(self.app.settings.levels.thresholds_m))

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
    token = auth.bearer_token(request)  # a program's API token (auth.BadToken if wrong)
    if token is not None:
        if not auth.token_ok(ctx.app.store, token):
            raise auth.BadToken()
        return ctx
    if not ctx.open_reads and auth.current_user(request, ctx.app.store) is None:
        raise NeedLogin()
    return ctx


def operator(request: Request) -> dict:
    """The logged-in operator (a running session of an enabled user), or NeedLogin."""
    user = auth.current_user(request, web(request).app.store)
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
        user=auth.current_user(request, ctx.app.store),
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
    env.globals["changed_vi"] = CHANGED_VI  # a data credit's "đã qua xử lý"
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
        local_input=lambda v: v.astimezone(zone).strftime("%Y-%m-%dT%H:%M"),
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
            field, value, f"«{value[:40]}» {_VI_TIME_PROBLEM}", f"{value[:40]!r}: {exc}"
        ) from None


def parse_period(params, zone) -> tuple[datetime | None, datetime | None]:
    """`from` and `to` (a date alone in `to` is that whole day); BadFilter naming each bad
    one, or `to` when it comes before `from`."""
    check = Checks()
    start = check(parse_day, params.get("from"), zone, field="from")
    end = check(parse_day, params.get("to"), zone, end_of_day=True, field="to")
    check.done()
    if start is not None and end is not None and end < start:
        raise BadFilter("to", params.get("to"), "«Đến ngày» phải sau «Từ ngày»", "is before 'from'")
    return start, end


def yes_no(value: str | None, field: str = "ack") -> bool | None:
    """`yes` → True, `no` → False, empty → None; BadFilter otherwise."""
    if not value:
        return None
    found = {"yes": True, "no": False}.get(value.lower())
    if found is None:
        raise BadFilter(field, value, "chỉ nhận «yes» hoặc «no»", "must be yes or no")
    return found


def choice(params, field: str, allowed) -> str | None:
    """One of `allowed`, or None when empty; BadFilter otherwise."""
    value = params.get(field) or None
    if value is not None and value not in allowed:
        names = ", ".join(sorted(allowed))
        raise BadFilter(field, value, f"chỉ nhận một trong: {names}", f"must be one of {names}")
    return value


def whole(params, field: str, low: int, high: int) -> int | None:
    """A whole number within [low, high], or None when empty; BadFilter otherwise."""
    value = params.get(field) or ""
    if not value:
        return None
    if not (value.isascii() and value.isdigit() and low <= int(value) <= high):
        raise BadFilter(
            field, value, f"phải là số nguyên từ {low} đến {high}",
            f"must be a whole number {low}-{high}",
        )  # fmt: skip
    return int(value)


def _text(params: dict[str, str], field: str, limit: int = 200) -> str | None:
    """Free text, stripped; BadFilter when too long."""
    value = (params.get(field) or "").strip() or None
    if value is not None and len(value) > limit:
        raise BadFilter(field, value, f"dài quá {limit} ký tự", f"longer than {limit} characters")
    return value


def log_filter(params: dict[str, str], zone) -> EventFilter:
    """The EventFilter of a query string; BadFilter names every unusable parameter."""
    check = Checks()
    period = check(parse_period, params, zone) or (None, None)
    values = {
        "ward": check(_text, params, "ward"),
        "unit": check(_text, params, "unit"),
        "road": check(_text, params, "road"),
        "min_level": check(whole, params, "level", 0, 10),
        "cause": check(choice, params, "cause", CAUSE_VI),
        "status": check(choice, params, "status", STATUS_VI),
        "kind": check(choice, params, "kind", KIND_VI),
        "acknowledged": check(yes_no, params.get("ack"), "ack"),
        "false_alarm": check(yes_no, params.get("false_alarm"), "false_alarm"),
    }
    check.done()
    return EventFilter(start=period[0], end=period[1], **values)


def filter_params(request: Request) -> dict[str, str]:
    """The non-empty log filters of a request's query string."""
    return {k: request.query_params[k] for k in FILTER_KEYS if request.query_params.get(k)}


def sort_params(request: Request) -> tuple[str, bool]:
    """(sort key, descending) of a request, defaulting to newest first; BadFilter for a
    sort key or direction that does not exist."""
    check = Checks()
    sort = check(choice, request.query_params, "sort", SORTS) or "opened"
    desc = check(choice, request.query_params, "desc", ("0", "1")) or "1"
    check.done()
    return sort, desc == "1"


def query_string(params: dict, **changes) -> str:
    """`?a=b&…` of params with changes applied (None drops a key)."""
    merged = {**params, **changes}
    return urlencode({k: v for k, v in merged.items() if v not in (None, "")})


def now_param(request: Request, ctx: WebContext) -> datetime:
    """`?at=` as a time (for looking back; a few minutes ahead of the clock count as now),
    else now; BadFilter for a time that is no time or lies ahead."""
    value = request.query_params.get("at")
    when = parse_day(value, ctx.zone, field="at")
    now = utcnow()
    if when is None or when <= now:
        return when or now
    if when - now > AT_SLACK:
        raise BadFilter(
            "at", value, "thời điểm xem lại không được ở tương lai", "is ahead of the clock"
        )
    return now
