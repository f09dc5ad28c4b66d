"""The service's commands: check, run, poll, replay, status, sources, bulletin, events, mute,
unmute.

Each imports what it needs when it runs, so `floodwatch --help` stays fast.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

import click

from floodwatch.cli.base import (
    EXIT_REJECTED,
    NO_DATA,
    Context,
    echo_rejected,
    fail,
    handles_errors,
    parse_period,
    parse_when,
    pass_ctx,
)
from floodwatch.core.readings import Kind
from floodwatch.core.text import STALE_VI, centimetres, label, local_time

if TYPE_CHECKING:
    from floodwatch.service.app import App
    from floodwatch.service.cycle import CycleResult

logger = logging.getLogger("floodwatch")
EVENT_COLUMNS = (
    "id", "segment_id", "segment_name", "unit", "kind", "status", "opened_at", "closed_at",
    "peak_depth_m", "peak_at", "max_level", "cause",
)  # fmt: skip


@click.command()
@pass_ctx
@handles_errors
def check(ctx: Context) -> None:
    """Validate the config and geodata; exit 1 with one line per problem.

    A `warning:` line (exit still 0) names a source whose provider's terms the
    config may break, such as Open-Meteo's free, non-commercial API.

    \b
    Example:
      floodwatch --config config/floodwatch.toml check
    """
    from floodwatch.service.app import load_checked
    from floodwatch.sources import build_sources, terms_warnings

    settings, geodata = load_checked(ctx.config)

    sources = build_sources(settings, geodata)
    click.echo(
        f"ok: {len(geodata.segments)} segments, {len(geodata.stations)} stations, "
        f"{len(settings.units)} units, {len(sources)} sources"
    )
    for line in terms_warnings(settings):
        click.echo(f"warning: {line}", err=True)


def print_cycle(result: CycleResult, zone) -> None:
    """One line per event change of a cycle."""
    for change in result.changes:
        if change.change:
            ev = change.event
            click.echo(
                f"{local_time(change.at, zone)}  {ev.segment_id:<24} {label('kind', ev.kind):<9} "
                f"{label('change', change.change):<16} {change.note}"
            )


def print_outlook(app: App, now: datetime, hours: int = 48) -> None:
    """The next tide peaks per station and the roads expected to flood."""
    from floodwatch.service.outlook import alarm_reached, next_high_waters

    zone = app.settings.zone
    highs = next_high_waters(app, now, hours)
    if highs:
        click.echo(f"Next high waters (predicted, {app.settings.timezone}):")
    for station, extremes in highs:
        peaks = "  ".join(
            f"{local_time(e.time, zone)} {e.level_m:.2f} m"
            + (f" ({label('alarm', a)})" if (a := alarm_reached(station, e.level_m)) else "")
            for e in extremes
        )
        click.echo(f"  {station.name:<12} {peaks}")
    flooding = [e for e in app.store.events.listing() if e.status != "closed"]
    click.echo(f"Roads flooded or expected to flood: {len(flooding)}")
    for ev in sorted(flooding, key=lambda e: e.expected_onset_at or e.opened_at):
        onset = ev.expected_onset_at or ev.opened_at
        click.echo(
            f"  {ev.segment_name or ev.segment_id:<28} {label('status', ev.status):<10} "
            f"from {local_time(onset, zone)}  peak {centimetres(ev.peak_depth_m)} at "
            f"{local_time(ev.peak_at, zone)}  ({label('cause', ev.cause)})"
        )
    print_unknown(app, now)


def print_unknown(app: App, now: datetime) -> None:
    """The roads whose state nobody knows, and what is missing: never left to read as dry."""
    from floodwatch.service.polling import health_view

    situation = app.pipeline.situation(now, health_view(app, now))
    if not situation.unknown:
        return
    names = {sid: st.name for sid, st in app.geodata.stations.items()}
    missing = sorted(
        {
            f"{label('variable', variable)} at {names[station]}"
            for u in situation.unknown
            for variable, station in (
                ("water_level", u.segment.tide_station),
                ("rainfall", u.segment.rain_station),
            )
            if variable in u.missing
        }
    )
    click.echo(
        f"Roads without data ({NO_DATA}): {len(situation.unknown)} of "
        f"{len(app.geodata.segments)}; their state is unknown, not dry"
    )
    click.echo(f"  missing: {', '.join(missing)}")


def _delivery(app: App):
    """The Telegram sender thread (started) and a no-op drain, or none and the console's."""
    from floodwatch.service.app import ConsoleNotifier
    from floodwatch.telegram.sender import TelegramNotifier, TelegramThread, read_token

    token = read_token()
    if not token:
        click.echo("No FLOODWATCH_TELEGRAM_TOKEN: alerts are printed here.")
        return None, ConsoleNotifier(app, click.echo).drain
    telegram = TelegramThread(TelegramNotifier(app, token))
    telegram.start()
    click.echo("Telegram delivery on.")
    return telegram, lambda: 0  # the sender thread drains the outbox itself


def _first_cycle(app: App, deliver) -> None:
    """Poll every source once, assess, deliver and print the outlook."""
    from floodwatch.service.cycle import FutureCycleError, utcnow
    from floodwatch.service.polling import poll_once

    now = utcnow()
    try:
        result = poll_once(app, now)
        logger.info("first cycle: %d changes", len(result.changes))
    except FutureCycleError as exc:
        # Keep running: delivery, the bot and the heartbeat's alarm to operators work.
        click.echo(f"error: {exc}", err=True)
    deliver()
    print_outlook(app, now)


def _schedule(app: App, deliver, leadership, stop) -> bool:
    """The scheduler until stopped; False when the active role was lost."""
    from floodwatch.service.scheduler import run_forever

    step = app.settings.assessment.step_minutes
    return run_forever(
        app,
        deliver,
        lambda r: print_cycle(r, app.settings.zone),
        lambda: click.echo(f"Running; cycle every {step} min. Ctrl-C or SIGTERM stops."),
        leadership,
        stop,
    )


@click.command()
@pass_ctx
@handles_errors
def run(ctx: Context) -> None:
    """Run the service: poll every source on its interval, assess, record, alert.

    Without a Telegram token, alerts are printed to standard output.

    \b
    Example:
      floodwatch run
    """
    from floodwatch.db.leader import Leadership
    from floodwatch.service.scheduler import StopRequest, wait_for_leadership

    stop = StopRequest()  # SIGTERM from here on: finish the step under way, then stop
    app = ctx.open()
    leadership = Leadership(app.store)
    telegram = None
    kept = True
    try:
        standby = "Standby: another instance is active; taking over if it stops."
        if wait_for_leadership(app, leadership, lambda: click.echo(standby), stop):
            click.echo("Active instance.")
            telegram, deliver = _delivery(app)
            if not stop:
                _first_cycle(app, deliver)
            if not stop:
                kept = _schedule(app, deliver, leadership, stop)
    except KeyboardInterrupt:  # Ctrl-C
        pass
    finally:
        if telegram is not None:
            telegram.stop()
        leadership.release()
        app.close()
    if not kept:
        fail("lost the active role (database connection dropped); exiting so systemd restarts")


@click.command()
@click.option("--at", "at_text", help="Assess as if it were this time (ISO 8601).")
@pass_ctx
@handles_errors
def poll(ctx: Context, at_text: str | None) -> None:
    """Poll every source once, run one cycle, print alerts, and exit.

    \b
    Example:
      floodwatch poll
      floodwatch poll --at 2025-11-05T18:00+07:00
    """
    from floodwatch.service.app import ConsoleNotifier
    from floodwatch.service.cycle import utcnow
    from floodwatch.service.polling import poll_once

    app = ctx.open()
    try:
        now = parse_when(at_text, app.settings.zone) or utcnow()
        result = poll_once(app, now)
        print_cycle(result, app.settings.zone)
        ConsoleNotifier(app, click.echo).drain()
        print_outlook(app, now)
    finally:
        app.close()


@click.command(name="replay")
@click.argument("csv_file", type=click.Path(path_type=Path))
@click.option("--quiet", "-q", is_flag=True, help="Do not print alerts and changes.")
@pass_ctx
@handles_errors
def replay_command(ctx: Context, csv_file: Path, quiet: bool) -> None:
    """Feed recorded readings through the whole pipeline in time order, as if live.

    CSV columns: time,station,variable,value[,kind,issued]. Rejected rows are
    listed with their line numbers; the good rows still go through. Exit code
    3 means some rows were rejected.

    \b
    Example:
      floodwatch replay tests/data/replay/spring_tide_dec2024.csv
    """
    from floodwatch.service.app import ConsoleNotifier
    from floodwatch.service.replay import replay
    from floodwatch.sources.csvfile import read_csv

    app = ctx.open(with_sources=False)
    try:
        parsed = read_csv(csv_file, app.geodata.stations)
        for problem in parsed.problems:
            click.echo(f"rejected: {problem}", err=True)
        # Console delivery is the only one a replay uses; --quiet delivers to nowhere.
        notifier = ConsoleNotifier(app, (lambda _text: None) if quiet else click.echo)

        def after(result: CycleResult) -> None:
            if not quiet:
                print_cycle(result, app.settings.zone)
            notifier.drain()

        done = replay(app, parsed.readings, after)
        if done.skipped:
            click.echo(
                f"note: {done.skipped} cycles were already assessed in this database and "
                "were skipped; replay drills into a fresh database (FLOODWATCH_DATABASE_URL)",
                err=True,
            )
        rejected = parsed.rejected + echo_rejected(csv_file, parsed, done)
        click.echo(
            f"replay: {parsed.rows} rows, {parsed.rows - rejected} accepted "
            f"({done.flagged} flagged as doubtful), {rejected} rejected; "
            f"{done.cycles} cycles run, {done.skipped} already assessed"
        )
    finally:
        app.close()
    if rejected:
        sys.exit(EXIT_REJECTED)


def _station_line(st: dict, measures: frozenset) -> str:
    """One station of `status`: level against BĐ, 24-hour rain; unknown said as such."""
    parts = [f"  {st['name']:<12}"]
    if "water_level" in measures:
        if st["level_blind"]:
            parts.append(f"{NO_DATA + f' ({STALE_VI})':<30}")
        elif st["level_m"] is None:
            parts.append(f"{NO_DATA:<30}")
        else:
            source = label("kind", "observed") if st["level_observed"] else "dự tính"
            parts.append(f"{st['level_m']:5.2f} m {source:<9} {label('alarm', st['alarm']):<9}")
    if "rainfall" in measures:
        hours = st["rain_24h_hours_with_data"] or 0
        if st["rain_24h_mm"] is None:
            quiet = f" ({STALE_VI})" if st["rain_blind"] else ""
            parts.append(f"rain 24 h: {NO_DATA}{quiet}")
        else:
            category = st["rain_category"] or "—"
            window = "24 h" if hours >= 24 else f"{hours:g} of the last 24 h with data"
            parts.append(f"rain {window}: {st['rain_24h_mm']:5.1f} mm ({category})")
    return " ".join(parts)


@click.command()
@click.option("--at", "at_text", help="Show the state as of this time (ISO 8601) [default: now].")
@click.option("--json", "as_json", is_flag=True, help="One JSON object for scripts (times in UTC).")
@pass_ctx
@handles_errors
def status(ctx: Context, at_text: str | None, as_json: bool) -> None:
    """Show the last cycle, stations, roads flooded or expected to flood, and what is unknown.

    With --at, the events open then, the levels known by then.
    A level or rain nobody knows is shown as "không có dữ liệu" (null in JSON), never 0.

    \b
    Example:
      floodwatch status
      floodwatch status --at 2024-12-16T18:00+07:00
      floodwatch status --json | jq .outbox_pending
    """
    import json

    from floodwatch.service.cycle import utcnow
    from floodwatch.service.views import status_document

    app = ctx.open(writes=False)
    try:
        zone = app.settings.zone
        now = parse_when(at_text, zone) or utcnow()
        doc = status_document(app, now)
        if as_json:
            click.echo(json.dumps(doc, ensure_ascii=False, indent=2))
            return
        _echo_stations(app, doc, now)
        _echo_unknown(doc, zone)
        _echo_events(doc, zone)
    finally:
        app.close()


def _echo_stations(app: App, doc: dict, now: datetime) -> None:
    """Print the last cycle's time and each station's level and rain (`status`)."""
    zone = app.settings.zone
    last = doc["last_cycle"]
    when = local_time(datetime.fromisoformat(last["at"]), zone) if last else "never"
    click.echo(f"Last cycle: {when}")
    click.echo(f"Stations at {local_time(now, zone)}:")
    for st in doc["stations"]:
        measures = app.geodata.stations[st["id"]].measures
        click.echo(_station_line(st, measures))


def _echo_unknown(doc: dict, zone: tzinfo) -> None:
    """Print the quiet inputs, the blind segments and the roads without data (`status`)."""
    if doc["stale_inputs"]:
        click.echo(f"Inputs without fresh data (mất tín hiệu): {len(doc['stale_inputs'])}")
        for item in doc["stale_inputs"]:
            newest = item["newest_at"]
            since = local_time(datetime.fromisoformat(newest), zone) if newest else "start-up"
            click.echo(
                f"  {item['station_name']:<12} {label('variable', item['variable']):<12} from "
                f"{item['source']:<12} nothing new since {since}"
            )
    if doc["blind_segments"]:
        click.echo(f"Blind (no fresh data, state unknown): {len(doc['blind_segments'])}")
        for segment in doc["blind_segments"]:
            click.echo(f"  {segment['name']} ({segment['id']})")
    unknown = doc["unknown_segments"]
    click.echo(f"Roads without data ({NO_DATA}): {len(unknown)}")
    for item in unknown:
        missing = ", ".join(label("variable", v) for v in item["missing"])
        click.echo(f"  {item['name']:<28} missing {missing}")


def _echo_events(doc: dict, zone: tzinfo) -> None:
    """Print the roads flooded now and those expected to flood (`status`)."""
    click.echo(f"Flooded now: {len(doc['flooded'])}")
    for ev in doc["flooded"]:
        click.echo(
            f"  {ev['segment_name']:<28} {label('status', ev['status']):<10} level "
            f"{ev['max_level']} peak {centimetres(ev['peak_depth_m'])} "
            f"({label('cause', ev['cause'])})"
        )
    click.echo(f"Expected to flood: {len(doc['expected'])}")
    for ev in doc["expected"]:
        onset = datetime.fromisoformat(ev["expected_onset_at"])
        click.echo(
            f"  {ev['segment_name']:<28} from {local_time(onset, zone)} peak "
            f"{centimetres(ev['peak_depth_m'])} ({label('cause', ev['cause'])})"
        )


def sources_document(app: App, health) -> list[dict]:
    """Each source's health, its inputs and what its last poll refused (for `sources`)."""
    states = app.store.health.source_states()
    runs = app.store.health.last_source_runs()
    names = {sid: st.name for sid, st in app.geodata.stations.items()}

    def iso(when: datetime | None) -> str | None:
        return when.isoformat() if when is not None else None

    out = []
    for source in app.sources:
        state, run = states.get(source.name), runs.get(source.name)
        item = {
            "name": source.name,
            "type": app.settings.sources[source.name].type,
            "status": health.statuses.get(source.name, "never"),
            "stale_after_minutes": source.stale_after_minutes,
            "last_success_at": iso(state.last_success_at) if state else None,
            "consecutive_failures": state.consecutive_failures if state else 0,
            "newest_at": iso(state.newest_at) if state else None,
            "last_error": state.last_error if state else None,
            "last_poll": None,
            "inputs": [
                {
                    "station": i.health.station,
                    "station_name": names.get(i.health.station, i.health.station),
                    "variable": i.health.variable,
                    "status": "stale" if i.stale else "ok",
                    "newest_at": iso(i.health.newest_at),
                    "stale_since": iso(i.health.stale_since),
                    "reference": i.reference,
                }
                for i in health.inputs
                if i.health.source == source.name
            ],
        }
        if run is not None:
            item["last_poll"] = {
                "at": iso(run.at),
                "ok": run.ok,
                "stored": run.accepted,
                "flagged": run.flagged,
                "rejected": run.rejected,
                "reasons": json.loads(run.reasons or "{}"),
                "details": [line for line in (run.details or "").splitlines() if line],
            }
        out.append(item)
    return out


@click.command()
@click.option("--at", "at_text", help="Judge health as of this time (ISO 8601) [default: now].")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@pass_ctx
@handles_errors
def sources(ctx: Context, at_text: str | None, fmt: str) -> None:
    """Show each source's health, each station's newest data, and what the last poll refused.

    Status: ok, degraded (a failed poll, over a tenth of a poll doubted, or some
    stations quiet), failing (3 failed polls in a row), stale (no new data within
    its stale_after_minutes for any of its stations). Each station of a source
    goes stale on its own ("mất tín hiệu"): its roads are then blind.

    \b
    Example:
      floodwatch sources
      floodwatch sources --format json | jq '.[].inputs[] | select(.status=="stale")'
    """
    from floodwatch.service.cycle import utcnow

    app = ctx.open(writes=False)
    try:
        zone = app.settings.zone
        now = parse_when(at_text, zone) or utcnow()
        from floodwatch.core.known import blind_segments
        from floodwatch.service.polling import health_view

        health = health_view(app, now)
        document = sources_document(app, health)
        if fmt == "json":
            click.echo(json.dumps(document, ensure_ascii=False, indent=2))
            return

        click.echo(
            f"{'source':<14} {'type':<21} {'status':<12} {'last success':<17} {'fails':>5} "
            f"{'newest data':<17} {'stored':>7} {'flagged':>7} {'rejected':>8}  last error"
        )
        for item in document:
            _echo_source(item, zone)
        blind = blind_segments(app.geodata.segments, health.blind)
        if blind:
            click.echo(f"Blind segments (no fresh data for a needed input): {len(blind)}")
            for segment in blind:
                click.echo(f"  {segment.id:<26} {segment.name}")
    finally:
        app.close()


def _local_or_dash(text: str | None, zone: tzinfo) -> str:
    """An ISO time of the sources document as local time, or "—" when there is none."""
    return local_time(datetime.fromisoformat(text), zone) if text else "—"


def _echo_source(item: dict, zone: tzinfo) -> None:
    """Print one source's row of `sources`, its stale inputs and what its last poll refused."""
    if item["status"] == "never":
        click.echo(f"{item['name']:<14} {item['type']:<21} {label('source_status', 'never')}")
        return
    poll = item["last_poll"] or {"stored": 0, "flagged": 0, "rejected": 0}
    click.echo(
        f"{item['name']:<14} {item['type']:<21} {label('source_status', item['status']):<12} "
        f"{_local_or_dash(item['last_success_at'], zone):<17} {item['consecutive_failures']:>5} "
        f"{_local_or_dash(item['newest_at'], zone):<17} {poll['stored']:>7} {poll['flagged']:>7} "
        f"{poll['rejected']:>8}  {item['last_error'] or ''}"
    )
    for inp in item["inputs"]:
        if inp["status"] == "stale":
            since = _local_or_dash(inp["newest_at"], zone) if inp["newest_at"] else "start-up"
            click.echo(
                f"{'':<14} {STALE_VI} {inp['station_name']} {label('variable', inp['variable'])}"
                f": nothing new since {since}"
            )
    if item["last_poll"] and item["last_poll"]["reasons"]:
        reasons = ", ".join(f"{k} {v}" for k, v in item["last_poll"]["reasons"].items())
        click.echo(f"{'':<14} last poll: {reasons}")
        for line in item["last_poll"]["details"]:
            click.echo(f"{'':<16} {line}")


@click.command()
@click.option("--at", "at_text", help="Compose as of this time (ISO 8601) [default: now].")
@click.option("--send", is_flag=True, help="Queue it for every configured chat as well.")
@pass_ctx
@handles_errors
def bulletin(ctx: Context, at_text: str | None, send: bool) -> None:
    """Print the daily bulletin ("Tin cảnh báo ngập lụt do triều cường").

    `run` queues it every day at [alerts] daily_bulletin_at (local time).

    \b
    Example:
      floodwatch bulletin
      floodwatch bulletin --send
    """
    from floodwatch.messages.bulletin import html_to_plain
    from floodwatch.service.cycle import utcnow
    from floodwatch.service.daily import bulletin_alert

    app = ctx.open(with_sources=False, writes=send)
    try:
        now = parse_when(at_text, app.settings.zone) or utcnow()
        alert = bulletin_alert(app, now)
        click.echo(html_to_plain(alert.body))
        if send:
            app.store.outbox.add([alert])
            click.echo(f"queued for {len(alert.targets)} chats", err=True)
    finally:
        app.close()


def _filter(**kwargs):
    from floodwatch.db.events import EventFilter

    return EventFilter(**kwargs)


@click.command()
@click.option("--from", "start", help="Events ongoing at or after this time (ISO 8601).")
@click.option("--to", "end", help="Events opened at or before this time (ISO 8601).")
@click.option("--segment", help="Only this segment id.")
@click.option("--unit", help="Only this unit id.")
@click.option("--kind", type=click.Choice([k.value for k in Kind]), help="Only this kind.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@pass_ctx
@handles_errors
def events(ctx, start, end, segment, unit, kind, fmt) -> None:
    """List flood events, newest first.

    Times without an offset are taken in the configured time zone.

    \b
    Example:
      floodwatch events --from 2024-12-01 --to 2024-12-31 --format csv
      floodwatch events --unit so_xay_dung --format json
    """
    from floodwatch.db.events import dumps
    from floodwatch.exports.tables import neutralised

    app = ctx.open(with_sources=False, writes=False)
    try:
        zone = app.settings.zone
        first, last = parse_period(start, end, zone)
        rows = app.store.events.listing(
            _filter(
                start=first,
                end=last,
                segment=segment,
                unit=unit,
                kind=kind,
            )
        )
    finally:
        app.close()
    if fmt == "json":
        click.echo(dumps(rows))
    elif fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=EVENT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        # Formula-like text (a road named "=…") is neutralised for spreadsheets.
        writer.writerows({k: neutralised(v) for k, v in r.as_json().items()} for r in rows)
        click.echo(out.getvalue(), nl=False)
    else:
        click.echo(f"{'id':>5} {'segment':<26} {'kind':<9} {'status':<11} {'start':<16} "
                   f"{'end':<16} {'peak':>6} lvl cause")  # fmt: skip
        for ev in rows:
            opened = local_time(ev.opened_at, zone)
            closed = ev.closed_at and local_time(ev.closed_at, zone)
            click.echo(
                f"{ev.id:>5} {ev.segment_id:<26} {label('kind', ev.kind):<9} "
                f"{label('status', ev.status):<11} {opened:<16} {closed or '':<16} "
                f"{centimetres(ev.peak_depth_m):>6} {ev.max_level:>3} "
                f"{label('cause', ev.cause, '')}"
            )


@click.command()
@click.argument("target", required=False)
@click.option("--hours", type=click.IntRange(1, 168), help="How long to mute, 1-168 hours.")
@click.option("--reason", default="", help="Why (works under repair, known closure...).")
@click.option("--list", "list_only", is_flag=True, help="List running and coming silences.")
@pass_ctx
@handles_errors
def mute(ctx: Context, target: str | None, hours: int | None, reason: str, list_only: bool) -> None:
    """Mute alerts for a segment or a unit for some hours; they are still logged.

    TARGET is a segment id, a unit id, or a road name (diacritics optional).

    \b
    Example:
      floodwatch mute cm-de-tham --hours 12 --reason "thi công cống"
      floodwatch mute ubnd_nam_can --hours 24
      floodwatch mute --list
    """
    from floodwatch.service.cycle import utcnow

    app = ctx.open(with_sources=False, writes=False)
    try:
        zone = app.settings.zone
        now = utcnow()
        if list_only or target is None:
            if target is None and not list_only:
                fail("give a segment or unit to mute (with --hours), or --list")
            _list_silences(app, now)
            return
        if hours is None:
            fail("--hours is required to mute (1-168)")
        kind, target_id, name = _target(app, target)
        muted = app.store.silences.add(kind, target_id, now, now + timedelta(hours=hours),
                                       reason, "cli")  # fmt: skip
        until = local_time(muted.until, zone)
        if muted.extended:
            click.echo(f"extended silence {muted.id}: {kind} {target_id} ({name}) until {until}")
        else:
            click.echo(f"muted {kind} {target_id} ({name}) until {until} (silence {muted.id})")
    finally:
        app.close()


def _target(app: App, target: str) -> tuple[str, str, str]:
    """(kind, id, name) of the segment or unit a mute names; exit 1 naming the problem."""
    from floodwatch.service.outlook import mute_target

    found, candidates = mute_target(app.settings, app.geodata, target)
    if found is None:
        ids = ", ".join(s.id for s in candidates[:5])
        hint = f"; did you mean: {ids}" if candidates else ""
        what = "is ambiguous" if candidates else "is not a segment or unit"
        fail(f"{target!r} {what}{hint}")
    return found


def _list_silences(app: App, now: datetime) -> None:
    """Print the running and coming silences with their ids (for `unmute ID`)."""
    zone = app.settings.zone
    rows = app.store.silences.listing(now)
    click.echo(f"Silences: {len(rows)}")
    for row in rows:
        click.echo(
            f"  {row.id:>4} {row.target_kind:<8} {row.target_id:<26} "
            f"{local_time(row.starts_at, zone)} → {local_time(row.until, zone)}  "
            f"{row.created_by}  {row.reason}"
        )


@click.command()
@click.argument("target")
@pass_ctx
@handles_errors
def unmute(ctx: Context, target: str) -> None:
    """Lift a silence now: alerts for its segment or unit are sent again.

    TARGET is a silence id (a number, from `floodwatch mute --list`), or a
    segment id, unit id or road name: every silence of that target is lifted.

    \b
    Example:
      floodwatch unmute 12
      floodwatch unmute cm-de-tham
      floodwatch unmute ubnd_nam_can
    """
    from floodwatch.service.cycle import utcnow

    app = ctx.open(with_sources=False, writes=False)
    try:
        now = utcnow()
        store = app.store.silences
        if target.isascii() and target.isdigit():
            row = store.lift(int(target), now, "cli")
            if row is None:
                fail(f"no running or coming silence {target} (see floodwatch mute --list)")
            lifted = [row]
        else:
            found = _target(app, target)
            lifted = store.lift_target(found[0], found[1], now, "cli")
            if not lifted:
                fail(f"{found[0]} {found[1]} ({found[2]}) is not muted")
        for row in lifted:
            click.echo(f"lifted silence {row.id}: {row.target_kind} {row.target_id} "
                       f"(was until {local_time(row.until, app.settings.zone)})")  # fmt: skip
    finally:
        app.close()


COMMANDS = (check, run, poll, replay_command, status, sources, bulletin, events, mute, unmute)
