"""Wiring: config + geodata + store + sources + pipeline, opened once per command;
and the console delivery used when there is no Telegram token."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from floodwatch.config import Settings, check_paths, load_settings
from floodwatch.core.geo import Geodata, load_geodata
from floodwatch.db.engine import check_storage, database_errors
from floodwatch.db.store import Store
from floodwatch.errors import ConfigError, StorageError
from floodwatch.messages.bulletin import html_to_plain
from floodwatch.service.cycle import Pipeline, utcnow
from floodwatch.sources import Source, build_sources

logger = logging.getLogger(__name__)


def load_checked(config_path: Path | str | None) -> tuple[Settings, Geodata]:
    """Settings and geodata, or ConfigError listing every problem of both."""
    settings = load_settings(config_path)
    origin = str(settings.config_path or "<config>")
    problems = check_paths(settings)
    problems += [f"{origin}: {p}" for p in check_storage(settings.storage.database_url)]
    if problems:
        raise ConfigError(problems)
    geodata = load_geodata(
        settings.resolve(settings.geodata.segments),
        settings.resolve(settings.geodata.stations),
        settings.unit_ids,
    )
    return settings, geodata


@dataclass
class App:
    """Everything a command needs, opened once."""

    settings: Settings
    geodata: Geodata
    store: Store
    pipeline: Pipeline
    sources: list[Source] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        config_path: Path | str | None,
        *,
        with_sources: bool = True,
        writes: bool = True,
        database_url: str | None = None,
    ) -> App:
        """Load and check the config, open (and migrate) the store, build the sources.

        Commands that only read (`writes=False`) leave the stored geodata alone;
        `database_url` opens another database than the config's (a backtest's scratch one).
        """
        settings, geodata = load_checked(config_path)
        sources = build_sources(settings, geodata, polls=writes) if with_sources else []
        store = Store(database_url or settings.storage.database_url)
        if writes:
            try:
                with database_errors(store.url):
                    store.sync_geodata(geodata)
            except StorageError:
                store.close()
                raise
        return cls(settings, geodata, store, Pipeline(settings, geodata, store), sources)

    def close(self) -> None:
        """Release the database."""
        self.store.close()


class ConsoleNotifier:
    """Delivers outbox alerts by writing them out (used when no Telegram token is set)."""

    def __init__(
        self, app: App, echo: Callable[[str], None], mark: Callable[[str], str] | None = None
    ):
        self.app = app
        self.echo = echo
        self.mark = mark or (lambda text: text)  # a drill's "DIỄN TẬP" first line

    def drain(self) -> int:
        """Write every pending alert as plain text and mark it delivered; returns the count."""
        sent = 0
        outbox = self.app.store.outbox
        with database_errors(self.app.store.url):
            while batch := outbox.pending_alerts():
                for alert in batch:
                    text = self.mark(html_to_plain(alert.body))
                    self.echo(
                        f"── alert #{alert.id} → {alert.unit} [{','.join(alert.kinds)}]\n{text}\n"
                    )
                    outbox.mark_console(alert.id, utcnow())
                    sent += 1
        return sent
