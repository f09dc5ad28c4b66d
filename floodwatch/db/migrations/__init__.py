"""Alembic migrations; `floodwatch db upgrade` (and every start) runs them to head."""
