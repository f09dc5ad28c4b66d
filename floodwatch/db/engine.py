"""The database engine: SQLite (WAL) by default, any SQLAlchemy URL otherwise.

Makes the engine (folders created, SQLite pragmas), turns a database that
cannot be reached into one StorageError line, runs the Alembic migrations, and
checks a URL without touching anything (for `check`).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, Insert, Update, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    NoSuchModuleError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
)

from floodwatch.core.settings import MAX_TIMEOUT_S
from floodwatch.errors import StorageError

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")


def redact(url: str) -> str:
    """The URL with any password hidden, for logs and messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<invalid database URL>"


# How long SQLite waits for another writer's lock before "database is locked";
# a `?timeout=` (seconds) in the URL overrides it.
DEFAULT_BUSY_TIMEOUT_S = 30.0


def _sqlite_pragmas(busy_timeout_s: float):
    """A connect hook: WAL for concurrent readers, a busy timeout instead of instant 'locked'."""

    def on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cursor.close()

    return on_connect


# A `?timeout=` beyond this is a typo, not a wish (the watchdog would fire first).
MAX_BUSY_TIMEOUT_S = 300.0


def make_engine(url: str) -> Engine:
    """An engine for the URL; creates the folder of a SQLite file.

    Raises StorageError (one line, password hidden) for a URL that does not
    parse, a driver that is not installed, a SQLite folder that cannot be
    created, or a busy timeout that is not 0-300 seconds.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise StorageError(f"storage.database_url: not a database URL: {redact(url)}") from None
    busy_timeout_s = DEFAULT_BUSY_TIMEOUT_S
    if parsed.get_backend_name() == "sqlite":
        if parsed.database not in (None, "", ":memory:"):
            folder = Path(parsed.database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(
                    f"storage.database_url: cannot create the folder {folder} "
                    f"({exc.strerror or type(exc).__name__})"
                ) from None
        if "timeout" in parsed.query:
            try:
                busy_timeout_s = float(parsed.query["timeout"])
            except (TypeError, ValueError):
                busy_timeout_s = math.nan
            if not 0 <= busy_timeout_s <= MAX_BUSY_TIMEOUT_S:  # NaN fails too
                raise StorageError(
                    f"storage.database_url: timeout must be 0-{MAX_BUSY_TIMEOUT_S:g} seconds: "
                    f"{redact(url)}"
                ) from None
    try:
        engine = create_engine(parsed)
    except (NoSuchModuleError, ImportError) as exc:
        raise StorageError(f"storage.database_url: no driver for {redact(url)} ({exc})") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas(busy_timeout_s))
    return engine


def bulk_execute(conn: Connection, stmt: Insert | Update, rows: Sequence[dict]) -> None:
    """One executemany of `stmt` through the driver, each distinct bind value converted once.

    SQLAlchemy converts every value of every row through its type (a datetime
    costs microseconds, and a first cycle writes tens of thousands of rows
    carrying the same few times); here each column's converter runs once per
    distinct value. Columns left out of the rows get their scalar Python-side
    default, as SQLAlchemy would give them; anything this cannot do the same
    way (a callable default) goes through SQLAlchemy's own executemany.
    """
    if not rows:
        return
    keys = list(rows[0])
    table = stmt.table
    fixed: dict[str, object] = {}
    if isinstance(stmt, Insert):
        for column in table.columns:
            if column.key in keys or column.primary_key or column.default is None:
                continue
            if not column.default.is_scalar:
                conn.execute(stmt, list(rows))
                return
            fixed[column.key] = column.default.arg
    compiled = stmt.compile(dialect=conn.dialect, column_keys=keys + list(fixed))
    order = compiled.positiontup or list(compiled.binds)
    converters = []
    for name in order:
        bind = compiled.binds[name]
        process = bind.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        converters.append((bind.key, process, {}))
    params = []
    for row in rows:
        values = []
        for key, process, memo in converters:
            value = row[key] if key in row else fixed[key]
            if process is not None and value is not None:
                try:
                    value = memo[value]
                except KeyError:
                    memo[value] = converted = process(value)
                    value = converted
                except TypeError:  # unhashable: convert without the memo
                    value = process(value)
            values.append(value)
        params.append(
            tuple(values) if compiled.positional else dict(zip(order, values, strict=True))
        )
    conn.exec_driver_sql(str(compiled), params)


@contextmanager
def database_errors(url: str, *, any_error: bool = False) -> Iterator[None]:
    """Turn a database that cannot be reached or written into one StorageError line.

    Covers a lost or refused connection, a SQLite file locked past its busy
    timeout and a full disk (all OperationalError); the transaction in flight
    has rolled back, so nothing was half written. With `any_error`, every
    database error (a missing table too) is turned, for callers that only
    report whether the database answered.
    """
    caught: type[Exception] = SQLAlchemyError if any_error else OperationalError
    try:
        yield
    except caught as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip()
        reason = detail.splitlines()[0] if detail else type(exc).__name__
        raise StorageError(f"database {redact(url)}: {reason}") from exc


def head_revision() -> str:
    """The newest migration, from the file names (`NNNN_what.py`, revision "NNNN").

    Read without Alembic, which costs a tenth of a second to import; a test
    checks it against Alembic's own idea of the head.
    """
    return max(p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))


def schema_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for a database Alembic has not touched."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except ProgrammingError:  # PostgreSQL: no such table
        return None
    except OperationalError as exc:  # SQLite says "no such table" this way
        if "no such table" in str(exc.orig or exc):
            return None
        raise


def migrate(engine: Engine, revision: str = "head") -> None:
    """Run the Alembic migrations up to `revision` (default: the newest) on this engine.

    A database already at the head is left alone without importing Alembic.
    On SQLite, altering a table means copying it; foreign keys are switched off
    for the migration (a PRAGMA that only works outside a transaction) and
    checked afterwards, as SQLite's documentation prescribes.
    """
    if revision == "head" and schema_revision(engine) == head_revision():
        return
    from alembic import command  # only when migrating: Alembic is slow to import
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        raw = conn.connection.driver_connection if sqlite else None
        if raw is not None:  # outside any transaction, or SQLite ignores it
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                if raw is not None:
                    # pysqlite opens a transaction only before INSERT/UPDATE/DELETE;
                    # open it now so a migration's DDL commits (or not) as a whole.
                    raw.execute("BEGIN")
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
        finally:
            if raw is not None:
                broken = raw.execute("PRAGMA foreign_key_check").fetchall()
                raw.execute("PRAGMA foreign_keys=ON")
        if raw is not None and broken:
            raise StorageError(f"migration left {len(broken)} rows with broken references")


# File systems that hold no files of ours: creating a folder or file there fails
# even for root (for whom os.access says yes to everything).
_VIRTUAL_FS = {
    "proc", "sysfs", "cgroup", "cgroup2", "devpts", "debugfs", "tracefs", "securityfs",
    "pstore", "bpf", "configfs", "fusectl", "mqueue", "efivarfs", "binfmt_misc", "autofs",
}  # fmt: skip


def _filesystem_type(path: Path) -> str | None:
    """The type of the file system holding an existing path (Linux), or None if unknown."""
    try:
        lines = Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best, kind = "", None
    for line in lines:
        fields, _, rest = line.partition(" - ")
        parts = fields.split()
        if len(parts) < 5 or not rest:
            continue
        # Mount points escape spaces and other bytes as \ooo octal.
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), parts[4])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, rest.split()[0]
    return kind


def _sqlite_file_problem(database: str) -> str | None:
    """Why `run` could not create or open this SQLite file, or None; creates nothing."""
    target = Path(database)
    if target.exists():
        if target.is_dir():
            return f"{target} is a folder, not a database file"
        if not target.is_file():
            return f"{target} is not a regular file"
        if not os.access(target, os.R_OK | os.W_OK):
            return f"{target} cannot be written (permissions)"
    # SQLite writes its -wal and -shm files beside the database: the folder must be writable.
    folder = target.parent
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None:
        return f"cannot create {folder}"
    if not existing.is_dir():
        return f"cannot create the folder {folder}: {existing} is a file"
    kind = _filesystem_type(existing)
    if kind in _VIRTUAL_FS:
        return f"cannot create {target}: {existing} is on the virtual file system {kind}"
    if not os.access(existing, os.W_OK | os.X_OK):
        verb = "write in" if existing == folder else "create folders in"
        return f"cannot {verb} {existing} (permissions)"
    return None


def check_storage(url: str) -> list[str]:
    """Problems `run` would meet opening `[storage] database_url`, found without creating anything.

    The URL must parse, its driver must import, and a SQLite file must be
    creatable: its folder exists or can be made, on a real, writable file system.
    """
    key = "storage.database_url"
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        reason = "" if isinstance(exc, ArgumentError) else f" ({exc})"
        hidden = re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)  # never print a password
        hidden = hidden if len(hidden) <= 80 else hidden[:79] + "…"
        return [f"{key}: not a database URL: {hidden}{reason}"]
    shown = parsed.render_as_string(hide_password=True)
    try:
        dialect = parsed.get_dialect()
        dialect.import_dbapi()
    except NoSuchModuleError:
        return [f"{key}: unknown database kind {parsed.drivername!r} in {shown}"]
    except ImportError as exc:
        return [f"{key}: no driver for {shown} ({exc}); install it or use postgresql+psycopg"]
    if parsed.get_backend_name() != "sqlite":
        return []
    problems = []
    if "timeout" in parsed.query:
        try:
            timeout_s = float(parsed.query["timeout"])
        except (TypeError, ValueError):
            timeout_s = math.nan
        if not 0 <= timeout_s <= MAX_TIMEOUT_S:
            problems.append(f"{key}: timeout must be 0 to {MAX_TIMEOUT_S:g} seconds: {shown}")
    if parsed.database not in (None, "", ":memory:") and not parsed.database.startswith("file:"):
        if "\x00" in parsed.database:
            problems.append(f"{key}: the SQLite path contains a NUL byte")
        elif problem := _sqlite_file_problem(parsed.database):
            problems.append(f"{key}: {problem}")
    return problems
