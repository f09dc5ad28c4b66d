"""Readings from CSV files (DESIGN.md format) dropped into a folder.

`fetch` reads every `*.csv` directly in the folder, oldest first, and moves
nothing. Files modified in the last `SETTLE_S` seconds may still be being
written and wait for the next poll; so do dotfiles (the usual "upload in
progress" name). Times are coerced to UTC by the CSV parser (every `time`
must carry an offset).

Each file is read on its own: a file that cannot be used at all (not UTF-8
text, binary, an unreadable header, anything the parser chokes on) costs only
itself and is quarantined with the reason; the files beside it are read.

Files are moved by `after_store(verdict)`, which the caller must call AFTER it
has committed the readings of that fetch, with the validation's verdict (the
scheduler calls `after_store` on any source that has it): to `archive/` when
every row was good, otherwise to `quarantine/` with `<name>.error.txt` beside
it listing each rejected line (by the parser or by validation: a time in the
future, a value outside the limits), why, and how many rows were accepted
anyway. Nothing is ever overwritten: a name that exists gets a timestamp
suffix.

A crash between storing and moving leaves the file where it was, so it is read
again at the next poll. Storing readings is an idempotent upsert, so that
second read duplicates nothing.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import Field

from floodwatch.core.settings import MAX_INTERVAL_MINUTES
from floodwatch.core.validate import Verdict
from floodwatch.errors import ConfigError, InputError, SourceError
from floodwatch.sources import FetchResult, Rejection, SourceContext, SourceSettingsBase
from floodwatch.sources.csvfile import decode_text, parse_csv

logger = logging.getLogger(__name__)


class DropFolderSettings(SourceSettingsBase):
    """CSV files (DESIGN.md format) dropped into a folder."""

    type: Literal["drop_folder"]
    path: Path = Path("../var/drop")
    interval_minutes: int = Field(5, ge=1, le=MAX_INTERVAL_MINUTES)


ARCHIVE = "archive"
QUARANTINE = "quarantine"
ERROR_SUFFIX = ".error.txt"
# A file touched this recently may still be being copied in.
SETTLE_S = 2.0


@dataclass
class FileOutcome:
    """What reading one dropped file gave: its identity at read time and its problems."""

    path: Path
    mtime_ns: int
    size: int
    accepted: int
    problems: list[str]
    # (station, time) of each reading taken from the file -> its line numbers.
    lines: dict[tuple[str, datetime], list[int]] = field(default_factory=dict)


def pending_files(folder: Path, now_s: float, settle_s: float = SETTLE_S) -> list[Path]:
    """The CSV files directly in `folder` that have settled, oldest first."""
    found = []
    for path in folder.iterdir():
        if path.name.startswith(".") or path.suffix.lower() != ".csv" or not path.is_file():
            continue
        mtime = path.stat().st_mtime
        if now_s - mtime < settle_s:
            logger.debug("%s: modified %.1f s ago; next poll", path, now_s - mtime)
            continue
        found.append((mtime, path.name, path))
    return [path for _, _, path in sorted(found)]


def _problem_line(path: Path, problem: str) -> str:
    """A CSV problem named by the file's name instead of its full path."""
    prefix = f"{path}: "
    return f"{path.name}: {problem[len(prefix) :]}" if problem.startswith(prefix) else problem


def free_name(folder: Path, name: str, stamp: str, companion: str = "") -> Path:
    """`folder/name`, or with a timestamp (and counter) suffix when that name is taken.

    A name counts as taken when it, or it + `companion` (e.g. ".error.txt"), exists.
    """

    def taken(path: Path) -> bool:
        return path.exists() or bool(companion and path.with_name(path.name + companion).exists())

    stem, suffix = Path(name).stem, Path(name).suffix
    target, count = folder / name, 0
    while taken(target):
        count += 1
        extra = f"-{count}" if count > 1 else ""
        target = folder / f"{stem}.{stamp}{extra}{suffix}"
    return target


def error_report(outcome: FileOutcome) -> str:
    """The text of `<name>.error.txt`: each rejected line and why, and what was kept."""
    lines = [f"{outcome.path.name}: {len(outcome.problems)} problem(s)", ""]
    lines += [f"- {problem}" for problem in outcome.problems]
    lines += ["", f"{outcome.accepted} row(s) were accepted anyway and stored."]
    return "\n".join(lines) + "\n"


@dataclass
class DropFolderSource:
    """CSV files dropped into a folder, ingested once, then archived or quarantined."""

    name: str
    interval_minutes: int
    folder: Path
    stations: frozenset[str]
    stale_after_minutes: int | None = None
    _last_fetch: list[FileOutcome] = field(default_factory=list, init=False, repr=False)

    @classmethod
    def from_settings(
        cls, name: str, cfg: DropFolderSettings, context: SourceContext
    ) -> DropFolderSource:
        """Resolve the folder against the config file; it is created on the first poll."""
        folder = context.settings.resolve(cfg.path)
        existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK):
            raise ConfigError(
                [f"sources.{name}.path: cannot create or write {folder} ({existing} is not a "
                 "writable folder)"]
            )  # fmt: skip
        return cls(
            name=name,
            interval_minutes=cfg.interval_minutes,
            folder=folder,
            stations=frozenset(context.geodata.stations),
            stale_after_minutes=cfg.stale_after_minutes,
        )

    @property
    def archive(self) -> Path:
        """Where fully good files go."""
        return self.folder / ARCHIVE

    @property
    def quarantine(self) -> Path:
        """Where files with any bad row go, with their `.error.txt`."""
        return self.folder / QUARANTINE

    def provides(self) -> set[tuple[str, str]]:
        """Unknown ahead of time: whatever the files hold."""
        return set()

    def fetch(self, start: datetime, end: datetime, now: datetime) -> FetchResult:
        """Every row of every settled file (the window does not apply); moves nothing."""
        result = FetchResult()
        self._last_fetch = []
        try:
            for sub in (self.archive, self.quarantine):
                sub.mkdir(parents=True, exist_ok=True)
            paths = pending_files(self.folder, time.time())
        except OSError as exc:
            raise SourceError(
                f"{self.name}: cannot create or list {self.folder} ({exc.strerror})"
            ) from None
        for path in paths:
            outcome = self._read_file(path, result)
            if outcome is None:
                continue
            self._last_fetch.append(outcome)
            logger.info("%s: %s: %d rows accepted, %d problems", self.name, path.name,
                        outcome.accepted, len(outcome.problems))  # fmt: skip
        return result

    def _read_file(self, path: Path, result: FetchResult) -> FileOutcome | None:
        """Read one file into `result`; its outcome, or None when it vanished meanwhile."""
        try:
            stat = path.stat()
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.error("%s: %s: cannot read (%s); trying again next poll", self.name, path.name,
                         exc.strerror)  # fmt: skip
            return None
        outcome = FileOutcome(path, stat.st_mtime_ns, stat.st_size, 0, [])
        try:
            parsed = parse_csv(path, decode_text(path, data), self.stations)
        except InputError as exc:
            outcome.problems.append(_problem_line(path, str(exc)))
        except Exception as exc:  # one odd file must never block the folder
            logger.exception("%s: %s: parser failed", self.name, path.name)
            outcome.problems.append(f"{path.name}: cannot be read ({type(exc).__name__}: {exc})")
        else:
            outcome.problems += [_problem_line(path, p) for p in parsed.problems]
            outcome.accepted = len(parsed.readings)
            for reading, line in zip(parsed.readings, parsed.lines, strict=True):
                outcome.lines.setdefault((reading.station, reading.time), []).append(line)
            result.readings.extend(parsed.readings)
        result.rejected.extend(Rejection("malformed", p) for p in outcome.problems)
        return outcome

    def after_store(self, verdict: Verdict | None = None) -> None:
        """Move the files of the last fetch; call only after its readings are committed.

        Readings the validation rejected (`verdict`) count as bad lines of their file.
        """
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        outcomes, self._last_fetch = self._last_fetch, []
        for rejection in verdict.rejected if verdict is not None else ():
            for outcome in outcomes:
                for line in outcome.lines.get((rejection.station, rejection.time), ()):
                    outcome.problems.append(f"{outcome.path.name}: line {line}: {rejection.detail}")
                    outcome.accepted -= 1
        for outcome in outcomes:
            path = outcome.path
            try:
                stat = path.stat()
            except FileNotFoundError:
                logger.warning("%s: %s vanished before it could be moved", self.name, path.name)
                continue
            if (stat.st_mtime_ns, stat.st_size) != (outcome.mtime_ns, outcome.size):
                # Changed since it was read: leave it, the next poll reads it again.
                logger.warning("%s: %s changed after it was read; reading it again next poll",
                               self.name, path.name)  # fmt: skip
                continue
            good = not outcome.problems
            if good:
                target = free_name(self.archive, path.name, stamp)
            else:
                target = free_name(self.quarantine, path.name, stamp, ERROR_SUFFIX)
            try:
                if not good:
                    report = target.with_name(target.name + ERROR_SUFFIX)
                    report.write_text(error_report(outcome), encoding="utf-8")
                path.rename(target)
            except OSError as exc:
                logger.error("%s: cannot move %s to %s (%s); it will be read again",
                             self.name, path.name, target, exc.strerror)  # fmt: skip
                continue
            if good:
                logger.info("%s: %s archived", self.name, path.name)
            else:
                logger.warning("%s: %s quarantined as %s (%d problems, %d rows accepted)",
                               self.name, path.name, target.name, len(outcome.problems),
                               outcome.accepted)  # fmt: skip
