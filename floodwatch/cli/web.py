"""`floodwatch user …` and `floodwatch web`: operator accounts and the web server."""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Mapping
from contextlib import contextmanager
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


@contextmanager
def opened_app(ctx: click.Context):
    """The App of the config (no sources), closed afterwards; errors as one line, exit 1."""
    try:
        app = ctx.obj.open(with_sources=False, writes=False)
    except ConfigError as exc:
        cli.fail(exc.problems)
    except FloodwatchError as exc:
        cli.fail(str(exc))
    try:
        yield app
    finally:
        app.close()


def shown_time(value, zone) -> str:
    """A stored time as local `dd/mm/yyyy HH:MM`, or `-`."""
    from floodwatch.core.text import local_time

    return local_time(value, zone) if value else "-"


@user.command(name="list")
@click.pass_context
def list_users(ctx: click.Context) -> None:
    """List the web's operators: name, display name, created, disabled, locked out,
    last login and running sessions.

    \b
    Example:
      floodwatch user list
    """
    from datetime import UTC, datetime

    with opened_app(ctx) as app:
        now = datetime.now(UTC)
        rows, locked = app.store.users.listing(now), app.store.logins.locked_out(now)
        zone = app.settings.zone
    if not rows:
        click.echo("no users: add one with `floodwatch user add NAME`")
        return
    click.echo(f"{'user':<16} {'display name':<24} {'created':<16} {'disabled':<8} "
               f"{'locked out until':<16} {'last login':<16} sessions")  # fmt: skip
    for row in rows:
        until = shown_time(locked.get(row.username), zone)
        click.echo(
            f"{row.username:<16} {row.display_name:<24} {shown_time(row.created_at, zone):<16} "
            f"{'yes' if row.disabled else 'no':<8} {until:<16} "
            f"{shown_time(row.last_login_at, zone):<16} {row.sessions}"
        )


def _change_user(ctx: click.Context, username: str, change, done: str) -> None:
    """Apply `change(app, username) -> bool` and say so; an unknown user is one line, exit 1."""
    with opened_app(ctx) as app:
        found = change(app, username)
    if not found:
        cli.fail(f"no user named {username!r} (see `floodwatch user list`)")
    logger.info("web user %s %s", username, done)
    click.echo(f"user {username} {done}")


@user.command(name="remove")
@click.argument("username")
@click.pass_context
def remove(ctx: click.Context, username: str) -> None:
    """Delete an operator; their sessions end at once (their notes keep their name).

    \b
    Example:
      floodwatch user remove lan
    """
    _change_user(ctx, username, lambda app, name: app.store.users.remove(name), "removed")


@user.command(name="disable")
@click.argument("username")
@click.pass_context
def disable(ctx: click.Context, username: str) -> None:
    """Stop an operator from logging in; their sessions end at once (`user enable` undoes).

    \b
    Example:
      floodwatch user disable lan
    """
    _change_user(ctx, username, lambda app, name: app.store.users.set_disabled(name, True),
                 "disabled (sessions ended)")  # fmt: skip


@user.command(name="enable")
@click.argument("username")
@click.pass_context
def enable(ctx: click.Context, username: str) -> None:
    """Let a disabled operator log in again.

    \b
    Example:
      floodwatch user enable lan
    """
    _change_user(ctx, username, lambda app, name: app.store.users.set_disabled(name, False),
                 "enabled")  # fmt: skip


@user.command(name="unlock")
@click.argument("username")
@click.pass_context
def unlock(ctx: click.Context, username: str) -> None:
    """Lift a login lockout (after 10 failed logins in a row a user name is locked out
    for 24 hours) and any login delay of that user name.

    \b
    Example:
      floodwatch user unlock lan
    """
    with opened_app(ctx) as app:
        known = app.store.users.get(username) is not None
        lifted = app.store.logins.unlock(username)
    if not known and not lifted:
        cli.fail(f"no user named {username!r} (see `floodwatch user list`)")
    logger.info("web user %s unlocked", username)
    click.echo(f"user {username} unlocked" if lifted else f"user {username} was not locked out")


def _loopback(host: str) -> bool:
    """Whether an address to listen on is reachable from this machine only."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: could be any interface


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--login-required", is_flag=True, help="Ask for a login (or an API token) to read too."
)
@click.option(
    "--allow-open-reads",
    is_flag=True,
    help="Serve reads without a login on an address other than loopback (refused otherwise).",
)
@click.option(
    "--forwarded-allow-ips",
    default="127.0.0.1",
    show_default=True,
    help="Proxies (comma-separated addresses, or *) whose X-Forwarded-For/-Proto are trusted.",
)
@click.pass_context
def web(
    ctx: click.Context,
    host: str,
    port: int,
    login_required: bool,
    allow_open_reads: bool,
    forwarded_allow_ips: str,
) -> None:
    """Serve the operators' web: map, flood log, event and road pages, JSON API.

    Reads are open unless --login-required; on an address other than loopback
    open reads must be asked for with --allow-open-reads (the API shows chat
    ids and operators' notes). Behind a TLS reverse proxy on this machine,
    X-Forwarded-Proto: https from --forwarded-allow-ips makes cookies Secure.
    The session secret comes from FLOODWATCH_WEB_SECRET or the systemd
    credential `web-secret`; without one, a random secret is made and logins
    do not survive a restart.

    \b
    Example:
      floodwatch web --login-required
      floodwatch web --host 0.0.0.0 --login-required --forwarded-allow-ips 10.0.0.5
    """
    if not login_required and not allow_open_reads and not _loopback(host):
        click.echo(
            f"error: --host {host} without --login-required would let anyone on the network "
            "read chat ids and operators' notes: add --login-required (or --allow-open-reads)",
            err=True,
        )
        sys.exit(2)
    _serve(ctx, host, port, login_required, forwarded_allow_ips)


def _serve(
    ctx: click.Context, host: str, port: int, login_required: bool, forwarded_allow_ips: str
) -> None:
    """Open the app and run uvicorn until stopped."""
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
            forwarded_allow_ips=forwarded_allow_ips,
        )
    finally:
        app.close()
