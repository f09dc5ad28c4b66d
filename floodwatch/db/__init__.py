"""Every SQL statement: the engine, models and migrations, readings, events, the
outbox, source health, silences, field reports, statistics, users, locks, backups.
May import the core and `floodwatch.errors`; nothing above it."""
