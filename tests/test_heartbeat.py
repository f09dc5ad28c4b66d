"""The heartbeat: feeds systemd's watchdog, and alarms operators when cycles stop."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta

from floodwatch.service.app import App
from floodwatch.service.polling import poll_once
from floodwatch.service.scheduler import MAX_CYCLE_S, Heartbeat


def test_heartbeat_alarms_once_when_cycles_stop_and_starves_a_stuck_cycle(
    project, monkeypatch, tmp_path
):
    path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(0.5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    app = App.open(project)
    try:
        t0 = datetime(2025, 11, 5, 5, tzinfo=UTC)
        poll_once(app, t0)
        printed: list[str] = []
        heartbeat = Heartbeat(app, lambda: printed.append("delivered"))
        heartbeat.beat(None, now=t0 + timedelta(minutes=30))
        assert server.recv(100) == b"WATCHDOG=1"
        assert not [a for a in app.store.outbox.pending_alerts() if a.kinds == ["heartbeat"]]
        late = t0 + timedelta(hours=4)  # three 60-minute steps without a cycle
        heartbeat.beat(None, now=late)
        heartbeat.beat(None, now=late + timedelta(minutes=1))
        alarms = [a for a in app.store.outbox.pending_alerts() if a.kinds == ["heartbeat"]]
        assert len(alarms) == 1 and "HỆ THỐNG NGỪNG ĐÁNH GIÁ" in alarms[0].body
        assert printed == ["delivered"]
        # A cycle stuck for too long: no watchdog ping, so systemd restarts the service.
        while True:  # drain the pings sent so far
            try:
                server.recv(100)
            except TimeoutError:
                break
        heartbeat.beat(time.monotonic() - MAX_CYCLE_S - 1, now=late)
        try:
            got = server.recv(100)
        except TimeoutError:
            got = b""
        assert got == b""
    finally:
        app.close()
        server.close()
