"""`floodwatch user add` and `floodwatch web`: operator accounts and the web server."""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path

import click

from floodwatch.cli import base as cli
from floodwatch.errors import ConfigError, FloodwatchError

logger = logging.getLogger(__name__)

SECRET_ENV = "FLOODWATCH_WEB_SECRET"
SECRET_CREDENTIAL = "web-secret"


def read_secret(environ: Mapping[str, str] | None = None) -> str | None:
    """The session secret from the environment, or from systemd's credentials directory."""
    environ = os.environ if environ is None else environ
    if secret := environ.get(SECRET_ENV, "").strip():
        return secret
    folder = environ.get("CREDENTIALS_DIRECTORY")
    if folder:
        path = Path(folder) / SECRET_CREDENTIAL
        if path.is_file():
            return path.read_text(encoding="utf-8").strip() or None
    return None


@click.group()
def user() -> None:
    """Operator accounts of the web."""


@user.command(name="add")
@click.argument("username")
@click.option("--display-name", default="", help="The name shown on notes (default USERNAME).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
def add(ctx: click.Context, username: str, display_name: str, password_stdin: bool) -> None:
    """Create an operator who can log in to the web (or set a new password).

    \b
    Example:
      floodwatch user add lan --display-name "Nguyễn Thị Lan"
      printf '%s\\n' "$PASSWORD" | floodwatch user add lan --password-stdin
    """
    from floodwatch.web.auth import add_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        app = ctx.obj.open(with_sources=False, writes=False)
        try:
            created = add_user(app.store, username, password, display_name)
        finally:
            app.close()
    except ConfigError as exc:
        cli.fail(exc.problems)
    except FloodwatchError as exc:
        cli.fail(str(exc))
    click.echo(f"user {username} {'created' if created else 'updated'}")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--login-required", is_flag=True, help="Ask for a login to read too (default: reads open)."
)
@click.pass_context
def web(ctx: click.Context, host: str, port: int, login_required: bool) -> None:
    """Serve the operators' web: map, flood log, event and road pages, JSON API.

    The session secret comes from FLOODWATCH_WEB_SECRET or the systemd
    credential `web-secret`; without one, a random secret is made and logins
    do not survive a restart.

    \b
    Example:
      floodwatch web --host 0.0.0.0 --port 8080
    """
    import uvicorn

    from floodwatch.web.app import create_app

    secret = read_secret()
    if not secret:
        logger.warning(
            "web: no %s or %s credential: random session secret; logins will not survive a restart",
            SECRET_ENV,
            SECRET_CREDENTIAL,
        )
        secret = secrets.token_urlsafe(32)
    try:
        app = ctx.obj.open(with_sources=True, writes=False)
    except ConfigError as exc:
        cli.fail(exc.problems)
    except FloodwatchError as exc:
        cli.fail(str(exc))
    try:
        reads = "need a login" if login_required else "open"
        click.echo(f"Web on http://{host}:{port}/ (reads {reads})")
        uvicorn.run(
            create_app(app, secret_key=secret, open_reads=not login_required),
            host=host,
            port=port,
            log_level="warning",
            proxy_headers=True,
        )
    finally:
        app.close()
