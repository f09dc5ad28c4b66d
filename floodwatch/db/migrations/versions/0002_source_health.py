"""source health, per-poll validation counts, reading flags, blind segments

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reading") as batch:
        batch.add_column(sa.Column("flag", sa.String(), nullable=True))
    with op.batch_alter_table("cycle") as batch:
        batch.add_column(sa.Column("blind", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "source_state",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("newest_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stale_since", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "source_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("flagged", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("reasons", sa.String(), nullable=False),
        sa.Column("details", sa.String(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_source_run_source", "source_run", ["source", "id"])


def downgrade() -> None:
    op.drop_index("ix_source_run_source", table_name="source_run")
    op.drop_table("source_run")
    op.drop_table("source_state")
    with op.batch_alter_table("cycle") as batch:
        batch.drop_column("blind")
    with op.batch_alter_table("reading") as batch:
        batch.drop_column("flag")
