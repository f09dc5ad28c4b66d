"""`floodwatch token add|list|revoke`: API tokens for programs (sent as a Bearer header)."""

from __future__ import annotations

import logging

import click

from floodwatch.cli import base as cli
from floodwatch.cli.web import opened_app, shown_time

logger = logging.getLogger(__name__)


@click.group()
def token() -> None:
    """API tokens for programs reading the JSON API under --login-required."""


@token.command(name="add")
@click.argument("name")
@click.option("--note", default="", help="What the token is for (shown by `token list`).")
@click.pass_context
def add(ctx: click.Context, name: str, note: str) -> None:
    """Create an API token and print it once (only its hash is kept).

    A program sends it as `Authorization: Bearer TOKEN`.

    \b
    Example:
      floodwatch token add dashboard --note "bản đồ ở phòng trực"
      curl -H "Authorization: Bearer fwt_…" https://ngap.example.vn/api/v1/status
    """
    from floodwatch.errors import FloodwatchError
    from floodwatch.web.auth import add_token

    with opened_app(ctx) as app:
        try:
            secret = add_token(app.store, name, note)
        except FloodwatchError as exc:
            cli.fail(str(exc))
    click.echo(f"token {name} created; it is shown only now, keep it secret:", err=True)
    click.echo(secret)


@token.command(name="list")
@click.pass_context
def list_tokens(ctx: click.Context) -> None:
    """List the API tokens: id, name, created, last used, revoked, note (never the token).

    \b
    Example:
      floodwatch token list
    """
    with opened_app(ctx) as app:
        rows, zone = app.store.tokens.listing(), app.settings.zone
    if not rows:
        click.echo("no API tokens: add one with `floodwatch token add NAME`")
        return
    click.echo(f"{'id':>4} {'name':<20} {'created':<16} {'last used':<16} {'revoked':<16} note")
    for row in rows:
        created, used = shown_time(row.created_at, zone), shown_time(row.last_used_at, zone)
        revoked = shown_time(row.revoked_at, zone)
        click.echo(f"{row.id:>4} {row.name:<20} {created:<16} {used:<16} {revoked:<16} {row.note}")


@token.command(name="revoke")
@click.argument("name_or_id")
@click.pass_context
def revoke(ctx: click.Context, name_or_id: str) -> None:
    """Revoke an API token by name or id: it is refused (401) from now on.

    \b
    Example:
      floodwatch token revoke dashboard
    """
    from datetime import UTC, datetime

    with opened_app(ctx) as app:
        row = app.store.tokens.revoke(name_or_id, datetime.now(UTC))
    if row is None:
        cli.fail(f"no API token named {name_or_id!r} (see `floodwatch token list`)")
    logger.info("api token %s revoked", row.name)
    click.echo(f"token {row.name} (id {row.id}) revoked")
