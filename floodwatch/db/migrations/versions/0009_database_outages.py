"""database outages: a row per time the database could not be used

Written by the process that saw the outage once the database answers again
(an outage cannot be written while it happens); `/metrics` counts them.

Revision ID: 0009
Revises: 0008

"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "database_outage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("database_outage", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_database_outage_started_at"), ["started_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("database_outage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_database_outage_started_at"))
    op.drop_table("database_outage")
