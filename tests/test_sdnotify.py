"""sd_notify against a real datagram socket, as systemd listens."""

from __future__ import annotations

import socket

from floodwatch.service.sdnotify import notify, watchdog_interval_s


def test_notify_reaches_the_socket_and_is_silent_without_one(monkeypatch, tmp_path):
    assert notify("READY=1") is False
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert notify("READY=1", "STATUS=ok") is True
        assert server.recv(100) == b"READY=1\nSTATUS=ok"
    monkeypatch.setenv("WATCHDOG_USEC", "120000000")
    assert watchdog_interval_s() == 60.0
