"""Fire wrong passwords at the real web (uvicorn on a loopback port, a temporary SQLite
database): how many attempts had their password checked, how many were refused (429).

    python benchmarks/bench_login.py [--attempts 400] [--rate 33] [--threads 8]

Three runs: one user name paced at --rate attempts a second (the issue's 33/s), the same
as fast as --threads parallel clients can, and one address trying a new name each time.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import uvicorn

from floodwatch.service.app import App
from floodwatch.web.app import create_app
from floodwatch.web.auth import add_user

ROOT = Path(__file__).resolve().parent.parent


def serve(web) -> tuple[str, uvicorn.Server, threading.Thread]:
    """The app on a free loopback port."""
    server = uvicorn.Server(
        uvicorn.Config(web, host="127.0.0.1", port=0, log_level="error", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            raise SystemExit("uvicorn did not start")
        time.sleep(0.02)
    return f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}", server, thread


def attempt(url: str, username: str) -> int:
    """One wrong login through the form, with its own session; the status code."""
    with httpx.Client(base_url=url, timeout=30) as client:
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
        data = {"username": username, "password": "sai-mật-khẩu", "csrf": token}
        return client.post("/login", data=data).status_code


def run(label: str, url: str, names, rate: float | None, threads: int) -> None:
    """Fire one attempt per name (paced at `rate`/s, or with `threads` in parallel)."""
    start = time.monotonic()
    if rate:
        statuses = []
        for i, name in enumerate(names):
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
            statuses.append(attempt(url, name))
    else:
        with ThreadPoolExecutor(threads) as pool:
            statuses = list(pool.map(lambda n: attempt(url, n), names))
    counts = Counter(statuses)
    elapsed = time.monotonic() - start
    other = len(statuses) - counts[401] - counts[429]
    print(f"{label}: {len(statuses)} attempts in {elapsed:.1f} s: {counts[401]} checked "
          f"(401), {counts[429]} refused (429), other {other}")  # fmt: skip


def fresh_run(label: str, names, rate: float | None, threads: int) -> None:
    """One run on a fresh database (no failures counted yet) and a fresh server."""
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FLOODWATCH_DATABASE_URL"] = f"sqlite:///{tmp}/bench.db"
        app = App.open(ROOT / "config" / "floodwatch.toml", with_sources=False)
        add_user(app.store, "lan", "mật-khẩu-đúng-2024", "Lan")
        url, server, thread = serve(create_app(app, secret_key="bench"))
        try:
            run(label, url, names, rate, threads)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=400)
    parser.add_argument("--rate", type=float, default=33.0)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    n = args.attempts
    fresh_run(f"one name at {args.rate:g}/s", ["lan"] * n, args.rate, 1)
    fresh_run(f"one name, {args.threads} clients in parallel", ["lan"] * n, None, args.threads)
    fresh_run("one address, a new name each time", [f"u{i}" for i in range(n)], None, 1)


if __name__ == "__main__":
    main()
