"""forecasts kept for scoring: each segment's forecast wet episode, when it changed

`forecast_issue` keeps, per segment, the next expected wet episode (onset, end,
peak, level, cause) each time a cycle's forecast of it changed, and a level-0
row when the forecast was withdrawn. `floodwatch backtest` scores them against
the observed events.

Revision ID: 0008
Revises: 0007

"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forecast_issue",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("segment_id", sa.String(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("onset_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("peak_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("peak_m", sa.Float(), nullable=True),
        sa.Column("cause", sa.Integer(), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("forecast_issue", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_forecast_issue_segment_id"), ["segment_id"])
        batch_op.create_index(batch_op.f("ix_forecast_issue_issued_at"), ["issued_at"])
        batch_op.create_index(batch_op.f("ix_forecast_issue_current"), ["current"])


def downgrade() -> None:
    op.drop_table("forecast_issue")
