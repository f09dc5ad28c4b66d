"""The running service: app wiring, the cycle (assess → step → annotate → commit),
polling, replay, the scheduler and heartbeat, the active-instance lock, systemd
notifications, and the views (status, bulletin, outlook, hydrographs) the bot, the
CLI and the web share. May import everything but `telegram`, `web` and `cli`."""
