"""`floodwatch drill FILE.csv`: the province's exercise, through the real chats.

Imports what it needs when it runs, so `floodwatch --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from floodwatch.cli.base import Context, echo_rejected, fail, handles_errors, pass_ctx

if TYPE_CHECKING:
    from floodwatch.service.app import App


def _progress(line: str) -> None:
    """A progress line on stderr."""
    click.echo(line, err=True)


def _start_delivery(app: App, token: str | None, read_updates: bool):
    """The drill's Telegram sender thread (started) and a no-op drain, or the console's."""
    from floodwatch.messages.drill import mark_plain
    from floodwatch.service.app import ConsoleNotifier

    if not token:
        _progress("drill: no FLOODWATCH_TELEGRAM_TOKEN: messages are printed here")
        return None, ConsoleNotifier(app, click.echo, mark=mark_plain).drain
    from floodwatch.telegram.drill import DrillNotifier
    from floodwatch.telegram.sender import TelegramThread

    thread = TelegramThread(DrillNotifier(app, token, read_updates=read_updates))
    thread.start()
    _progress("drill: delivering through Telegram to the configured chats")
    return thread, lambda: 0  # the sender thread drains the outbox itself


def _run(app: App, setup, csv_file: Path, wait_ack: float | None, timeout: float | None) -> None:
    """Replay, deliver, wait, print the summary; exit 1 if deliveries were left pending."""
    from floodwatch.db.engine import redact
    from floodwatch.messages.drill import summary_text
    from floodwatch.service.cycle import utcnow
    from floodwatch.service.drill import drill_report, replay_drill, wait_acks, wait_delivered
    from floodwatch.telegram.sender import read_token

    token = read_token()
    started, done, notes, rejected = utcnow(), None, [], 0
    thread, drain = _start_delivery(app, token, wait_ack is not None)
    try:
        done = replay_drill(app, setup.csv.readings, _progress, drain)
        rejected = echo_rejected(csv_file, setup.csv, done)
        delivered = wait_delivered(app, timeout * 60, _progress)
        if delivered and wait_ack is not None:
            if not wait_acks(app, wait_ack, _progress):
                notes.append(f"hết {wait_ack:g} phút chờ xác nhận")
            delivered = wait_delivered(app, timeout * 60, _progress)  # escalations, if any
    except KeyboardInterrupt:
        notes.append("dừng giữa chừng (Ctrl-C)")
        delivered, timeout = False, None
    finally:
        if thread is not None:
            thread.stop()
    report = drill_report(app, csv_name=str(csv_file), telegram=bool(token), started_at=started,
                          result=done, wait_ack_minutes=wait_ack, rejected=rejected,
                          notes=notes)  # fmt: skip
    click.echo(summary_text(report, app.settings.zone))
    url = redact(app.store.url)
    _progress(f"drill: look back with FLOODWATCH_DATABASE_URL={url} floodwatch events")
    if not delivered:
        pending = sum(c.pending for c in report.chats)
        why = "interrupted" if timeout is None else f"after --timeout {timeout:g} min"
        fail(f"{pending} deliveries still pending {why} (Telegram unreachable?); they stay "
             f"in {url}")  # fmt: skip


@click.command()
@click.argument("csv_file", type=click.Path(path_type=Path))
@click.option(
    "--db",
    "db_url",
    metavar="URL",
    help="The drill's database [default: a new SQLite file drill-TIME.db beside the live "
    "one]. Never the live database, nor one already used.",
)
@click.option(
    "--wait-ack",
    type=click.FloatRange(0, 24 * 60),
    metavar="MINUTES",
    help='Also wait up to MINUTES for every alert asking for "Đã nhận" to be acknowledged.',
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 24 * 60),
    default=30,
    show_default=True,
    metavar="MINUTES",
    help="Give up waiting for deliveries after MINUTES (exit 1; the summary says what is left).",
)
@pass_ctx
@handles_errors
def drill(
    ctx: Context, csv_file: Path, db_url: str | None, wait_ack: float | None, timeout: float
) -> None:
    """Run a drill: replay FILE.csv into a drill database and deliver every message, marked
    "DIỄN TẬP", through the configured chats (Telegram with FLOODWATCH_TELEGRAM_TOKEN, else
    printed here); then print the operators' summary.

    Nothing of the drill touches the live database: its log, statistics and exports stay
    as they were. The drill database's CAP status is Exercise. Progress goes to stderr.

    \b
    Example:
      floodwatch drill drills/dec2024.csv
      floodwatch drill drills/dec2024.csv --wait-ack 30
      floodwatch drill drills/dec2024.csv --db sqlite:///var/drill-2025.db
    """
    from floodwatch.db.engine import redact as report_url
    from floodwatch.service.drill import open_drill, prepare

    setup = prepare(ctx.config, csv_file, db_url)
    if setup.csv.problems:
        for problem in setup.csv.problems:
            click.echo(f"rejected: {problem}", err=True)
        fail(f"{csv_file}: {len(setup.csv.problems)} rows rejected; fix them and run the drill "
             "again (nothing was sent)")  # fmt: skip
    app = open_drill(setup, str(csv_file))
    _progress(f"drill: database {report_url(app.store.url)}")
    try:
        _run(app, setup, csv_file, wait_ack, timeout)
    finally:
        app.close()
