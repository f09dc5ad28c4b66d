"""list-valued columns as JSON: alert.kinds, alert.event_ids, delivery.message_ids; meta

The lists were comma-joined text; existing rows are converted ("onset,level_up"
becomes ["onset", "level_up"], "3,11" becomes [3, 11], "" becomes []). The
`meta` table keeps small facts about the database, such as the fingerprint of
the geodata last synced (so commands skip rewriting unchanged segments).

Revision ID: 0006
Revises: 0005

"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COLUMNS = {"alert": ("kinds", "event_ids"), "delivery": ("message_ids",)}
NUMBERS = {"event_ids", "message_ids"}


def _convert(table: str, columns: tuple[str, ...], to_json: bool) -> None:
    """Rewrite every row's list columns as JSON text (or back to comma-joined text)."""
    conn = op.get_bind()
    rows = conn.execute(sa.text(f"SELECT id, {', '.join(columns)} FROM {table}")).fetchall()
    assignments = ", ".join(f"{c} = :{c}" for c in columns)
    update = sa.text(f"UPDATE {table} SET {assignments} WHERE id = :id")
    for row in rows:
        values = {"id": row[0]}
        for column, text in zip(columns, row[1:], strict=True):
            if to_json:
                items = [i for i in (text or "").split(",") if i]
                values[column] = json.dumps([int(i) for i in items] if column in NUMBERS else items)
            else:
                values[column] = ",".join(str(i) for i in json.loads(text or "[]"))
        conn.execute(update, values)


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, columns in COLUMNS.items():
        _convert(table, columns, to_json=True)
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(
                    column,
                    existing_type=sa.String(),
                    type_=sa.JSON(),
                    existing_nullable=False,
                    postgresql_using=f"{column}::json" if postgres else None,
                )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(
                    column,
                    existing_type=sa.JSON(),
                    type_=sa.String(),
                    existing_nullable=False,
                    postgresql_using=f"{column}::text" if postgres else None,
                )
        _convert(table, columns, to_json=False)
    op.drop_table("meta")
