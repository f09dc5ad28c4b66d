"""Headers every response carries: a strict Content-Security-Policy, no framing, no
sniffing, same-origin referrers; and the `Secure` flag on cookies sent over HTTPS.

A pure ASGI middleware (it only edits the headers of `http.response.start`). The
request counts as HTTPS when its scheme is `https`: directly, or through uvicorn's
proxy headers, which honour `X-Forwarded-Proto` only from `--forwarded-allow-ips`.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def content_security_policy(img_origins: Iterable[str] = ()) -> str:
    """The policy: everything from this site only (images also as data: URLs and from
    `img_origins`, e.g. a tile server); no inline scripts or styles, no framing."""
    images = " ".join(["'self'", "data:", *img_origins])
    return "; ".join(
        (
            "default-src 'self'",
            f"img-src {images}",
            "script-src 'self'",
            "style-src 'self'",
            "object-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'self'",
            "form-action 'self'",
        )
    )


class SecurityHeaders:
    """Add the security headers to every response; mark cookies `Secure` over HTTPS."""

    def __init__(self, app: ASGIApp, img_origins: Iterable[str] = ()):
        self.app = app
        csp = content_security_policy(img_origins)
        self.headers = [
            (b"content-security-policy", csp.encode("latin-1")),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"same-origin"),
            (b"x-content-type-options", b"nosniff"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, _secure(value) if https and name.lower() == b"set-cookie" else value)
                    for name, value in message.get("headers", [])
                ]
                present = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in self.headers if n not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _secure(cookie: bytes) -> bytes:
    """A Set-Cookie value with the `Secure` attribute."""
    attributes = {part.strip().lower() for part in cookie.split(b";")[1:]}
    return cookie if b"secure" in attributes else cookie + b"; Secure"
