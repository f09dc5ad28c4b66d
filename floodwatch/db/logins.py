"""Login throttling: failed logins counted per user name and per address, in the database
(so a restart of the web forgets nothing).

Every attempt that is let through is counted as a failure *before* its password is
checked (in one transaction, rows locked), and forgiven when it succeeds: parallel
attempts cannot slip past the count. After `free` consecutive failures a key is refused
for a delay that doubles with each further failure, up to `cap_s`; a user name with
`lock_after` failures is locked out for `lock_s`, or until `floodwatch user unlock`.
Failures older than `forget_s` (and not blocking) are forgotten.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, and_, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from floodwatch.db.models import LoginThrottleRow

USER_PREFIX, ADDRESS_PREFIX = "user:", "addr:"


@dataclass(frozen=True, slots=True)
class Limit:
    """How many failures a key may have, and what follows."""

    free: int  # failures before the first delay
    base_s: float  # the first delay; each further failure doubles it
    cap_s: float  # the longest delay
    forget_s: float  # failures this old (and not blocking) are forgotten
    lock_after: int | None = None  # failures that lock a user name out
    lock_s: float = 0.0  # how long a lockout lasts when nobody lifts it

    def blocked_for(self, failures: int) -> float:
        """Seconds refused after `failures` consecutive failures (0: not refused)."""
        if self.lock_after is not None and failures >= self.lock_after:
            return self.lock_s
        if failures < self.free:
            return 0.0
        return min(self.base_s * 2 ** min(failures - self.free, 40), self.cap_s)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether an attempt may check its password; if not, for how long and why."""

    allowed: bool
    retry_after_s: int = 0
    locked: bool = False


class LoginThrottle:
    """The `login_throttle` table."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def _insert_missing(self, conn: Connection, keys: list[str], at: datetime) -> None:
        """Rows with no failures for keys not yet counted (concurrent inserts do not clash)."""
        insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        rows = [{"key": k, "failures": 0, "last_failure_at": at, "locked": False} for k in keys]
        conn.execute(insert(LoginThrottleRow).values(rows).on_conflict_do_nothing())

    def attempt(self, limits: dict[str, Limit], at: datetime) -> Verdict:
        """Refuse the attempt if any key is blocked; otherwise count it as a failure of each
        key (forgiven by `succeeded`) and let its password be checked."""
        keys = sorted(limits)
        forget = min(limit.forget_s for limit in limits.values())
        with self.engine.begin() as conn:
            # A write first: on SQLite it takes the write lock before anything is read.
            stale = LoginThrottleRow.last_failure_at < at - timedelta(seconds=forget)
            free = or_(LoginThrottleRow.blocked_until.is_(None),
                       LoginThrottleRow.blocked_until <= at)  # fmt: skip
            conn.execute(delete(LoginThrottleRow).where(and_(stale, free)))
            self._insert_missing(conn, keys, at)
            rows = conn.execute(
                select(LoginThrottleRow)
                .where(LoginThrottleRow.key.in_(keys))
                .order_by(LoginThrottleRow.key)  # one lock order: no deadlock on PostgreSQL
                .with_for_update()
            ).all()
            blocked = [r for r in rows if r.blocked_until is not None and r.blocked_until > at]
            if blocked:
                wait = max((r.blocked_until - at).total_seconds() for r in blocked)
                return Verdict(False, max(1, math.ceil(wait)), any(r.locked for r in blocked))
            for row in rows:
                limit, failures = limits[row.key], row.failures + 1
                seconds = limit.blocked_for(failures)
                conn.execute(
                    update(LoginThrottleRow)
                    .where(LoginThrottleRow.key == row.key)
                    .values(
                        failures=failures,
                        last_failure_at=at,
                        blocked_until=at + timedelta(seconds=seconds) if seconds else None,
                        locked=limit.lock_after is not None and failures >= limit.lock_after,
                    )
                )
        return Verdict(True)

    def succeeded(self, user_key: str, address_key: str, address_limit: Limit) -> None:
        """Forgive a successful attempt: the user name starts afresh, the address has one
        failure less (and no delay below its free failures)."""
        with self.engine.begin() as conn:
            conn.execute(delete(LoginThrottleRow).where(LoginThrottleRow.key == user_key))
            row = conn.execute(
                select(LoginThrottleRow)
                .where(LoginThrottleRow.key == address_key)
                .with_for_update()
            ).first()
            if row is not None:
                failures = max(row.failures - 1, 0)
                values = {"failures": failures}
                if failures < address_limit.free:
                    values["blocked_until"] = None
                conn.execute(
                    update(LoginThrottleRow)
                    .where(LoginThrottleRow.key == address_key)
                    .values(**values)
                )

    def unlock(self, username: str) -> bool:
        """Lift a user name's delay or lockout; True when it had failures counted."""
        with self.engine.begin() as conn:
            deleted = conn.execute(
                delete(LoginThrottleRow).where(LoginThrottleRow.key == USER_PREFIX + username)
            )
            return deleted.rowcount > 0

    def locked_out(self, at: datetime) -> dict[str, datetime]:
        """User name → end of its lockout, for the names locked out at `at`."""
        query = select(LoginThrottleRow.key, LoginThrottleRow.blocked_until).where(
            LoginThrottleRow.locked.is_(True),
            LoginThrottleRow.blocked_until > at,
            LoginThrottleRow.key.startswith(USER_PREFIX, autoescape=True),
        )
        with self.engine.connect() as conn:
            return {key.removeprefix(USER_PREFIX): until for key, until in conn.execute(query)}
