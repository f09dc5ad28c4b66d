"""`floodwatch`: the top-level group; every command group registers here."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import click

from floodwatch import __version__
from floodwatch.cli.backtest import backtest_command
from floodwatch.cli.base import Context
from floodwatch.cli.db import db
from floodwatch.cli.drill import drill
from floodwatch.cli.export import export
from floodwatch.cli.service import COMMANDS
from floodwatch.cli.tide import tide
from floodwatch.cli.tokens import token
from floodwatch.cli.web import user, web


class HideBotToken(logging.Filter):
    """Masks a Telegram bot token in any log line: at -v the HTTP client logs every Bot API
    URL (`…/bot<token>/sendMessage`), and python-telegram-bot its base URL at -vv."""

    TOKEN = re.compile(r"bot\d+:[A-Za-z0-9_-]+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.TOKEN.search(message):
            record.msg, record.args = self.TOKEN.sub("bot<token>", message), None
        return True


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "-c",
    type=click.Path(path_type=Path),
    envvar="FLOODWATCH_CONFIG",
    help="Config file [default: config/floodwatch.toml; env FLOODWATCH_CONFIG].",
)
@click.option("--verbose", "-v", count=True, help="More log output (-vv for debug).")
@click.version_option(__version__, prog_name="floodwatch")
@click.pass_context
def main(ctx: click.Context, config: Path | None, verbose: int) -> None:
    """Flood and tide alerts for Cà Mau province.

    \b
    Example:
      floodwatch check
      floodwatch --config /etc/floodwatch/floodwatch.toml run
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(
        level=max(level, logging.DEBUG),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(HideBotToken())
    ctx.obj = Context(config)


for command in (*COMMANDS, backtest_command, drill, tide, db, export, user, token, web):
    main.add_command(command)
