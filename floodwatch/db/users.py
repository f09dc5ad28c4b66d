"""The web's operators and their sessions: accounts with salted password hashes (hashing
is the web's), and server-side sessions (the sha256 of the random id in the cookie)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, delete, func, insert, select, update

from floodwatch.db.models import SessionRow, UserRow


class Users:
    """The `web_user` and `web_session` tables."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def save(
        self, username: str, password_hash: str, display_name: str | None, at: datetime
    ) -> bool:
        """Create the user, or set a new hash (and a name, when given) and end the user's
        sessions; True when created."""
        values = {"password_hash": password_hash}
        if display_name:
            values["display_name"] = display_name
        with self.engine.begin() as conn:
            exists = conn.execute(
                select(UserRow.username).where(UserRow.username == username)
            ).first()
            if exists:
                conn.execute(update(UserRow).where(UserRow.username == username).values(**values))
                conn.execute(delete(SessionRow).where(SessionRow.username == username))
            else:
                values.setdefault("display_name", username)
                conn.execute(insert(UserRow).values(username=username, created_at=at, **values))
        return exists is None

    def get(self, username: str) -> UserRow | None:
        """The user of that name, if any."""
        with self.engine.connect() as conn:
            return conn.execute(select(UserRow).where(UserRow.username == username)).first()

    def listing(self, at: datetime) -> list:
        """Every user by name (UserRow's columns), with `sessions`: how many of their
        logins are still running at `at`."""
        sessions = (
            select(SessionRow.username, func.count().label("n"))
            .where(SessionRow.expires_at > at)
            .group_by(SessionRow.username)
            .subquery()
        )
        query = (
            select(UserRow, func.coalesce(sessions.c.n, 0).label("sessions"))
            .outerjoin(sessions, sessions.c.username == UserRow.username)
            .order_by(UserRow.username)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def remove(self, username: str) -> bool:
        """Delete a user and end every session of theirs; False when there is no such user."""
        with self.engine.begin() as conn:
            conn.execute(delete(SessionRow).where(SessionRow.username == username))
            return conn.execute(delete(UserRow).where(UserRow.username == username)).rowcount > 0

    def set_disabled(self, username: str, disabled: bool) -> bool:
        """Disable (ending every session) or enable a user; False when there is no such user."""
        with self.engine.begin() as conn:
            if disabled:
                conn.execute(delete(SessionRow).where(SessionRow.username == username))
            changed = conn.execute(
                update(UserRow).where(UserRow.username == username).values(disabled=disabled)
            )
            return changed.rowcount > 0

    def start_session(
        self, username: str, id_hash: str, at: datetime, expires_at: datetime
    ) -> None:
        """Keep a new login (and forget expired ones); the user's last login is `at`."""
        with self.engine.begin() as conn:
            conn.execute(delete(SessionRow).where(SessionRow.expires_at <= at))
            conn.execute(
                insert(SessionRow).values(
                    id_hash=id_hash, username=username, created_at=at, expires_at=expires_at
                )
            )
            conn.execute(
                update(UserRow).where(UserRow.username == username).values(last_login_at=at)
            )

    def session_user(self, id_hash: str, at: datetime) -> UserRow | None:
        """The enabled user of a session still running at `at`, else None."""
        query = (
            select(UserRow)
            .join(SessionRow, SessionRow.username == UserRow.username)
            .where(SessionRow.id_hash == id_hash, SessionRow.expires_at > at)
            .where(UserRow.disabled.is_(False))
        )
        with self.engine.connect() as conn:
            return conn.execute(query).first()

    def end_session(self, id_hash: str) -> None:
        """End one session (logout)."""
        with self.engine.begin() as conn:
            conn.execute(delete(SessionRow).where(SessionRow.id_hash == id_hash))
