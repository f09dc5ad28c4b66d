"""Benchmark Telegram delivery: alert latency and throughput under Telegram's flood limits.

The real python-telegram-bot client and TelegramNotifier run in their TelegramThread (1 s
delivery passes, as in `floodwatch run`) against tests/fake_telegram.FakeTelegram with
`enforce_limits = True`; the repository root is put on
sys.path for that import. Hydrographs are off (`[telegram] hydrographs = false`): the figures
are about delivery only.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from floodwatch.core.readings import Reading, Variable  # noqa: E402
from floodwatch.db.outbox import NewAlert  # noqa: E402
from floodwatch.service.app import App  # noqa: E402
from floodwatch.telegram.sender import TelegramNotifier, TelegramThread  # noqa: E402
from tests.fake_telegram import FakeTelegram  # noqa: E402

TOKEN = "123456:BENCH-TOKEN"
START = datetime(2026, 11, 26, tzinfo=UTC)
HOUR = timedelta(hours=1)
UNIT_CHATS = {"ubnd_an_xuyen": -1001, "so_xay_dung": -1002, "ubnd_tan_thanh": -1003}
OPERATORS = -1009
# TP Cà Mau levels, hourly: HIGH floods "Đường thử triều thấp" (crest 0.82 m, UBND An Xuyên)
# only; two LOW hours later the road has been dry for 60 min, the event closes (all-clear),
# and the next HIGH is a new onset.
LEVELS_M = (0.97, 0.45, 0.45)
# At most one message per chat per cycle: cycles that sent something are paced 3.2 s apart,
# under Telegram's 20 messages a minute per group, so the per-minute limit is not measured.
CYCLE_GAP_S = 3.2
BODY = "⚠️ <b>BẮT ĐẦU NGẬP</b> — UBND phường {i}\n🔵 <b>Đường thử số {i}</b>: đang ngập 25 cm"


def write_config(folder: Path, unit_chats: dict[str, int], operators: int, url: str) -> Path:
    """The shipped config on the replay test roads, a temp SQLite file, chats on the fake."""
    folder.mkdir(parents=True, exist_ok=True)
    text = (ROOT / "config" / "floodwatch.toml").read_text(encoding="utf-8")
    for old, new in (
        ("sqlite:///var/floodwatch.db", f"sqlite:///{folder / 'bench.db'}"),
        ("../geodata/segments.geojson", str(ROOT / "tests/data/replay/segments.geojson")),
        ("../geodata/stations.geojson", str(ROOT / "geodata/stations.geojson")),
        ('constituents = "tides"', f'constituents = "{ROOT / "config/tides"}"'),
    ):
        text = text.replace(old, new)
    for unit, chat in unit_chats.items():
        text = text.replace(f'id = "{unit}"\n', f'id = "{unit}"\ntelegram_chats = [{chat}]\n')
    text += f'\n[telegram]\nbase_url = "{url}/bot"\noperators_chats = [{operators}]\n'
    text += "hydrographs = false\n"
    path = folder / "floodwatch.toml"
    path.write_text(text, encoding="utf-8")
    return path


def wait_delivered(app: App, timeout_s: float) -> bool:
    """Poll the outbox until nothing is pending; False on timeout."""
    deadline = time.monotonic() + timeout_s
    while app.store.outbox.pending_count():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def started(app: App) -> TelegramThread:
    """The notifier in its thread, as `floodwatch run` starts it, once its bot is up."""
    thread = TelegramThread(TelegramNotifier(app, TOKEN))
    thread.start()
    time.sleep(1.5)  # Application.initialize (getMe) and the first, empty pass
    return thread


def bench_latency(folder: Path, cycles: int, seed: int = 5) -> dict:
    """Ingest a flooding (or draining) level, run a cycle, time until each message arrives."""
    rng = random.Random(seed)
    out: dict = {"app_s": [], "unit_s": [], "ops_s": [], "every_s": [], "kinds": {}}
    with FakeTelegram() as tg:
        tg.enforce_limits = True
        app = App.open(write_config(folder, UNIT_CHATS, OPERATORS, tg.url), with_sources=False)
        thread = started(app)
        try:
            at, last_sent = START, 0.0
            for i in range(cycles):
                # Wait out the pacing gap, then a random part of a pass (sample every phase).
                time.sleep(max(0.0, last_sent + CYCLE_GAP_S - time.monotonic()))
                time.sleep(rng.uniform(0.0, 1.0))
                mark = len(tg.sent)
                t0 = time.monotonic()
                level = LEVELS_M[i % len(LEVELS_M)]
                reading = Reading("tp_ca_mau", Variable.WATER_LEVEL, at, level)
                app.pipeline.ingest_checked([reading], at, "bench")
                result = app.pipeline.cycle(at)
                out["app_s"].append(time.monotonic() - t0)
                if not wait_delivered(app, 90.0):
                    raise RuntimeError(f"cycle {i}: not delivered within 90 s")
                calls = [c for c in tg.sent[mark:] if c.method == "sendMessage"]
                for kind in {c.alert for c in result.changes if c.alert}:
                    out["kinds"][kind] = out["kinds"].get(kind, 0) + 1
                if calls:
                    last_sent = t0
                    for c in calls:
                        out["ops_s" if c.chat_id == OPERATORS else "unit_s"].append(c.at - t0)
                        out["every_s"].append(c.at - t0)
                at += HOUR
        finally:
            thread.stop()
            app.close()
        out["violations"] = len(tg.limit_violations)
    return out


def ceiling_s(per_chat: list[int], per_chat_s: float = 1.0, per_minute: int = 20) -> float:
    """Earliest time after the first send that the last can go (1/s per chat, 20/min/group)."""
    worst = 0.0
    for count in per_chat:
        times: list[float] = []
        for k in range(count):
            t = k * per_chat_s if not times else times[-1] + per_chat_s
            if k >= per_minute:
                t = max(t, times[k - per_minute] + 60.0)
            times.append(t)
        worst = max(worst, times[-1] if times else 0.0)
    return worst


def bench_throughput(folder: Path, n_alerts: int, n_chats: int, probe_after_s: float) -> dict:
    """Queue a backlog over group chats + operators, time its delivery; probe an idle chat."""
    chats = [-100_101 - i for i in range(n_chats)] + [OPERATORS]
    probe_chat = -100_100
    with FakeTelegram() as tg:
        tg.enforce_limits = True
        app = App.open(write_config(folder, {}, OPERATORS, tg.url), with_sources=False)
        now = datetime.now(UTC)
        backlog = [
            NewAlert(now, "bench", ["onset"], BODY.format(i=i), [(chats[i % len(chats)], None)])
            for i in range(n_alerts)
        ]
        app.store.outbox.add(backlog)
        t_start = time.monotonic()
        thread = started(app)
        try:
            time.sleep(max(0.0, t_start + probe_after_s - time.monotonic()))
            t_probe = time.monotonic()
            probe = NewAlert(now, "bench", ["onset"], BODY.format(i="probe"), [(probe_chat, None)])
            app.store.outbox.add([probe])
            if not wait_delivered(app, 600.0):
                raise RuntimeError("backlog not delivered within 600 s")
        finally:
            thread.stop()
            app.close()
        sends = [c for c in tg.sent if c.method == "sendMessage" and c.chat_id in chats]
        [probe_call] = [c for c in tg.sent if c.chat_id == probe_chat]
        per_chat = {chat: [c.at for c in sends if c.chat_id == chat] for chat in chats}
        first, last = min(c.at for c in sends), max(c.at for c in sends)
        return {
            "messages": len(sends),
            "span_s": last - first,
            "from_start_s": last - t_start,
            "per_chat_rate": [
                (len(ts) - 1) / (ts[-1] - ts[0]) for ts in per_chat.values() if len(ts) > 1
            ],
            "ceiling_s": ceiling_s([len(ts) for ts in per_chat.values()]),
            "chats": len(chats),
            "probe_s": probe_call.at - t_probe,
            "probe_after_s": probe_after_s,
            "violations": len(tg.limit_violations),
        }


def stats(values: list[float]) -> str:
    """p50, p95 and max of a list of seconds, formatted."""
    if not values:
        return f"{'-':>8}{'-':>8}{'-':>8}{0:>6}"
    p50, p95 = np.percentile(values, [50, 95])
    return f"{p50:>8.2f}{p95:>8.2f}{max(values):>8.2f}{len(values):>6}"


def main(argv: list[str] | None = None) -> int:
    """Parse options, run both benchmarks and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=30, help="latency: cycles (alternating)")
    parser.add_argument("--alerts", type=int, default=300, help="throughput: queued alerts")
    parser.add_argument("--chats", type=int, default=10, help="throughput: group chats (+1 ops)")
    parser.add_argument(
        "--probe-after",
        type=float,
        default=30.0,
        help="throughput: when to queue the idle-chat alert",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="floodwatch-bench-tg-") as tmp:
        lat = bench_latency(Path(tmp) / "latency", args.cycles)
        put = bench_throughput(Path(tmp) / "throughput", args.alerts, args.chats, args.probe_after)
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(lat["kinds"].items()))
    print(f"\nAlert latency: {args.cycles} cycles, ingest of one TP Cà Mau level -> message at the")
    print(f"fake Bot API (limits enforced, hydrographs off); alerts: {kinds}")
    print(f"{'seconds from ingest':<34}{'p50':>8}{'p95':>8}{'max':>8}{'n':>6}")
    print(f"{'ingest_checked + cycle':<34}{stats(lat['app_s'])}")
    print(f"{'message to the unit chat':<34}{stats(lat['unit_s'])}")
    print(f"{'message to the operators chat':<34}{stats(lat['ops_s'])}")
    print(f"{'every message':<34}{stats(lat['every_s'])}   (target p95 < 2)")
    print(f"{'limit violations (429)':<34}{lat['violations']:>8}")
    rates = put["per_chat_rate"]
    steady = min(30.0, put["chats"] * 20 / 60)
    print(f"\nThroughput: {args.alerts} queued alerts over {args.chats} group chats + operators")
    print(f"{'':<34}{'measured':>10}{'ceiling':>10}")
    print(f"{'messages':<34}{put['messages']:>10}")
    print(f"{'first -> last message, s':<34}{put['span_s']:>10.1f}{put['ceiling_s']:>10.1f}")
    print(f"{'thread start -> last message, s':<34}{put['from_start_s']:>10.1f}")
    print(f"{'overall msg/s':<34}{put['messages'] / put['span_s']:>10.2f}"
          f"{put['messages'] / put['ceiling_s']:>10.2f}")  # fmt: skip
    print(f"{'steady-state msg/s (20/min/group)':<34}{'':>10}{steady:>10.2f}")
    per_chat = max(1, args.alerts // put["chats"] - 1) / put["ceiling_s"]
    print(f"{'per chat msg/s (min / mean)':<34}{min(rates):>5.2f}/{np.mean(rates):<4.2f}"
          f"{per_chat:>10.2f}")  # fmt: skip
    print(f"{'limit violations (429)':<34}{put['violations']:>10}{0:>10}")
    probe = f"alert to an idle chat at {put['probe_after_s']:.0f} s, s"
    print(f"{probe:<34}{put['probe_s']:>10.1f}   (queued while the groups wait out 20/min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
