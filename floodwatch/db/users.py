"""The web's operators: accounts with salted password hashes (hashing is the web's)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, insert, select, update

from floodwatch.db.models import UserRow


class Users:
    """The `web_user` table."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def save(
        self, username: str, password_hash: str, display_name: str | None, at: datetime
    ) -> bool:
        """Create the user, or set a new hash (and a name, when given); True when created."""
        values = {"password_hash": password_hash}
        if display_name:
            values["display_name"] = display_name
        with self.engine.begin() as conn:
            exists = conn.execute(
                select(UserRow.username).where(UserRow.username == username)
            ).first()
            if exists:
                conn.execute(update(UserRow).where(UserRow.username == username).values(**values))
            else:
                values.setdefault("display_name", username)
                conn.execute(insert(UserRow).values(username=username, created_at=at, **values))
        return exists is None

    def get(self, username: str) -> UserRow | None:
        """The user of that name, if any."""
        with self.engine.connect() as conn:
            return conn.execute(select(UserRow).where(UserRow.username == username)).first()
