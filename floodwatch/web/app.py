"""The web application: `create_app(app, secret_key=…)` builds it around an opened App."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from urllib.parse import urlencode, urlsplit

import prometheus_client.exposition
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from floodwatch.errors import StorageError
from floodwatch.service.app import App
from floodwatch.service.metrics import metrics_registry
from floodwatch.web import actions, api, apidocs, auth, pages, planning
from floodwatch.web.context import (
    HERE,
    BadFilter,
    NeedLogin,
    WebContext,
    make_templates,
    problem_lines,
    render,
)
from floodwatch.web.security import SecurityHeaders

logger = logging.getLogger(__name__)
SESSION_COOKIE = "floodwatch_session"
SESSION_MAX_AGE_S = auth.SESSION_MAX_AGE_S  # one shift
# What a program without (or with a wrong) token is told to send.
WWW_AUTHENTICATE = 'Bearer realm="floodwatch"'

# The classic text format every Prometheus reads: prometheus-client 0.22+ calls 1.0.0 "latest"
# (the same text for our names); older releases name only 0.0.4, as CONTENT_TYPE_LATEST.
METRICS_CONTENT_TYPE = getattr(
    prometheus_client.exposition,
    "CONTENT_TYPE_PLAIN_0_0_4",
    prometheus_client.exposition.CONTENT_TYPE_LATEST,
)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/healthz"


def _install_session(web: FastAPI, secret_key: str) -> None:
    """Keep the operator's session id in a signed cookie that lasts one shift (the session
    itself is in the database: logout ends it; SecurityHeaders adds `Secure` over HTTPS)."""
    web.add_middleware(
        SessionMiddleware,
        secret_key=secret_key,
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE_S,
        same_site="lax",
    )


def _install_nul_guard(web: FastAPI) -> None:
    """Refuse requests with a NUL byte in the address before any route sees them."""

    @web.middleware("http")
    async def refuse_nul(request: Request, call_next):
        """A NUL byte in the address is never a road or a station (PostgreSQL refuses it)."""
        if "%00" in request.url.query or "\x00" in request.url.path:
            if _wants_json(request):
                return JSONResponse({"detail": "NUL byte in the request"}, status_code=400)
            return Response("Yêu cầu không hợp lệ.", status_code=400, media_type="text/plain")
        return await call_next(request)


def _install_routes(web: FastAPI) -> None:
    """Mount the static files and include the pages, actions, API and planning routers."""
    web.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    web.include_router(pages.router)
    web.include_router(actions.router)
    web.include_router(api.router)
    web.include_router(planning.router)


def _install_health(web: FastAPI, app: App) -> None:
    """Add the open /healthz and /metrics endpoints."""

    @web.get("/healthz", tags=["health"])
    def healthz() -> JSONResponse:
        """200 with the last cycle time when the database answers, 503 otherwise."""
        try:
            if not app.store.ping():
                raise StorageError("database does not answer")
            last = app.store.events.last_cycle_at()
        except StorageError as exc:
            logger.error("healthz: %s", exc)
            return JSONResponse({"ok": False, "error": "database"}, status_code=503)
        return JSONResponse({"ok": True, "last_cycle_at": last.isoformat() if last else None})

    registry = metrics_registry(app)  # one per app: two apps in a process do not mix

    @web.get("/metrics", tags=["health"], response_class=Response)
    def metrics() -> Response:
        """Prometheus metrics, read from the database at each scrape (open, like /healthz)."""
        return Response(generate_latest(registry), media_type=METRICS_CONTENT_TYPE)


def _install_error_handlers(web: FastAPI) -> None:
    """Answer login, filter, HTTP and validation errors as JSON for the API, as pages otherwise."""

    @web.exception_handler(auth.BadToken)
    def bad_token(_request: Request, _exc: auth.BadToken):
        """A wrong, revoked or malformed Bearer token: 401 on pages and API alike."""
        challenge = WWW_AUTHENTICATE + ', error="invalid_token"'
        return JSONResponse({"detail": "invalid or revoked API token"}, status_code=401,
                            headers={"WWW-Authenticate": challenge})  # fmt: skip

    @web.exception_handler(NeedLogin)
    def need_login(request: Request, _exc: NeedLogin):
        if _wants_json(request):
            return JSONResponse({"detail": "login or API token required"}, status_code=401,
                                headers={"WWW-Authenticate": WWW_AUTHENTICATE})  # fmt: skip
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":  # back to the page the form was on
            target = urlsplit(request.headers.get("referer", "")).path or "/"
        return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)

    @web.exception_handler(BadFilter)
    def bad_filter(request: Request, exc: BadFilter):
        if _wants_json(request):
            detail = [{"loc": ["query", p.field], "msg": str(p), "input": (p.value or "")[:100]}
                      for p in exc.problems]  # fmt: skip
            return JSONResponse({"detail": detail}, status_code=422)
        return render(request, "error.html", status_code=400, status=400,
                      message="Bộ lọc không hợp lệ.", problems=problem_lines(exc))  # fmt: skip

    @web.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException):
        if _wants_json(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        return render(request, "error.html", status_code=exc.status_code,
                      status=exc.status_code, message=exc.detail)  # fmt: skip

    @web.exception_handler(RequestValidationError)
    def invalid(request: Request, exc: RequestValidationError):
        if _wants_json(request):
            return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)
        return render(request, "error.html", status_code=400, status=400,
                      message="Dữ liệu gửi lên không hợp lệ.")  # fmt: skip


def create_app(
    app: App, *, secret_key: str, open_reads: bool = True, img_origins: Sequence[str] = ()
) -> FastAPI:
    """The FastAPI application for an opened App; reads need a login (or an API token)
    unless `open_reads`. `img_origins`: other origins the CSP allows images from, besides the
    configured tile server (`[web] tiles`)."""
    if not secret_key:
        raise ValueError("the web needs a secret key for its session cookies")
    web = FastAPI(
        title="floodwatch",
        summary="Ngập do triều cường và mưa — Cà Mau",
        description="Flood events, road segments, stations, readings and service status.",
        version="1",
        docs_url=None,  # served from local assets by apidocs
        redoc_url=None,  # ReDoc needs inline styles: not served
    )
    web.state.web = WebContext(app=app, open_reads=open_reads,
                               templates=make_templates(app.settings.zone))  # fmt: skip
    # Order matters: the last added runs outermost. The NUL guard runs outside the
    # session, and the security headers outside everything (its answers carry them too).
    _install_session(web, secret_key)
    _install_nul_guard(web)
    tiles = app.settings.web.tile_origin  # the basemap's tile server, when one is configured
    origins = (*img_origins, *([tiles] if tiles else []))
    web.add_middleware(SecurityHeaders, img_origins=origins)
    apidocs.install(web)  # before /static, which would otherwise take /static/swagger
    _install_routes(web)
    _install_health(web, app)
    _install_error_handlers(web)
    return web
