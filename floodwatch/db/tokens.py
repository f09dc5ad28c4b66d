"""API tokens for programs: only the sha256 of each token is stored (hashing is the web's)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, insert, or_, select, update

from floodwatch.db.models import ApiTokenRow

# A token's last use is written at most this often (not one write per API call).
LAST_USED_EVERY = timedelta(minutes=1)


class ApiTokens:
    """The `api_token` table."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def add(self, name: str, token_hash: str, note: str, at: datetime) -> int | None:
        """Keep a new token; its id, or None when the name is taken."""
        with self.engine.begin() as conn:
            if conn.execute(select(ApiTokenRow.id).where(ApiTokenRow.name == name)).first():
                return None
            return conn.execute(
                insert(ApiTokenRow)
                .values(name=name, token_hash=token_hash, note=note, created_at=at)
                .returning(ApiTokenRow.id)
            ).scalar_one()

    def listing(self) -> list[ApiTokenRow]:
        """Every token (revoked ones too), by id."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(ApiTokenRow).order_by(ApiTokenRow.id)))

    def revoke(self, name_or_id: str, at: datetime) -> ApiTokenRow | None:
        """Revoke the token of that name (or id); the token, or None when there is none."""
        match = ApiTokenRow.name == name_or_id
        if name_or_id.isascii() and name_or_id.isdigit():
            match = or_(match, ApiTokenRow.id == int(name_or_id))
        with self.engine.begin() as conn:
            row = conn.execute(select(ApiTokenRow).where(match).order_by(ApiTokenRow.id)).first()
            if row is None:
                return None
            if row.revoked_at is None:
                conn.execute(
                    update(ApiTokenRow).where(ApiTokenRow.id == row.id).values(revoked_at=at)
                )
            return conn.execute(select(ApiTokenRow).where(ApiTokenRow.id == row.id)).first()

    def use(self, token_hash: str, at: datetime) -> ApiTokenRow | None:
        """The live token with that hash (its last use noted), or None."""
        query = select(ApiTokenRow).where(
            ApiTokenRow.token_hash == token_hash, ApiTokenRow.revoked_at.is_(None)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is not None and (
            row.last_used_at is None or at - row.last_used_at > LAST_USED_EVERY
        ):
            with self.engine.begin() as conn:
                conn.execute(
                    update(ApiTokenRow).where(ApiTokenRow.id == row.id).values(last_used_at=at)
                )
        return row
