"""per-input health and data gaps

Revision ID: 0005
Revises: 0004

"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "input_state",
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("station", sa.String(), nullable=False),
        sa.Column("variable", sa.String(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("newest_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stale_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reference", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("source", "station", "variable"),
    )
    op.create_table(
        "data_gap",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("station", sa.String(), nullable=False),
        sa.Column("variable", sa.String(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("data_gap", schema=None) as batch_op:
        batch_op.create_index("ix_data_gap_open", ["ended_at", "station", "variable"])


def downgrade() -> None:
    with op.batch_alter_table("data_gap", schema=None) as batch_op:
        batch_op.drop_index("ix_data_gap_open")
    op.drop_table("data_gap")
    op.drop_table("input_state")
