"""A small real HTTP server on 127.0.0.1 for source tests: recorded payloads and failures."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Reply:
    """One canned reply: status, body and headers, optionally slow or cut short."""

    status: int = 200
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    truncate: bool = False  # announce the full length, send half, close

    @classmethod
    def json(cls, text: str, status: int = 200, **kw) -> Reply:
        """A JSON reply."""
        return cls(status, text, {"Content-Type": "application/json; charset=utf-8"}, **kw)


@dataclass
class Request:
    """What the server received (a POSTed form's fields in `form`)."""

    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    method: str = "GET"
    form: dict[str, str] = field(default_factory=dict)


class FakeServer:
    """Routes by path; each route is a list of replies served in turn (the last repeats)."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply] | Callable[[Request], Reply]] = {}
        self.requests: list[Request] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace")
                form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
                self.do_GET(method="POST", form=form)

            def do_GET(self, method: str = "GET", form: dict | None = None):  # noqa: N802
                parts = urlsplit(self.path)
                request = Request(
                    parts.path, parse_qs(parts.query), dict(self.headers), method, form or {}
                )
                server.requests.append(request)
                reply = server._reply(request)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                body = reply.body.encode() if isinstance(reply.body, str) else reply.body
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2] if reply.truncate else body)
                    if reply.truncate:
                        self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):  # keep test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def _reply(self, request: Request) -> Reply:
        route = self.routes.get(request.path)
        if route is None:
            return Reply(404, "not found", {"Content-Type": "text/plain"})
        if callable(route):
            return route(request)
        return route.pop(0) if len(route) > 1 else route[0]

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash."""
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
