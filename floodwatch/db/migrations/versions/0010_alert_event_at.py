"""alert.event_at: the moment an alert describes, so a late delivery can say how late

The earliest change an alert reports (an onset seen at 14:05 and committed only
after an outage, at 16:15, describes 14:05). NULL for alerts written before, and
for alarms and notes: their `created_at` is the moment they describe.

Revision ID: 0010
Revises: 0009

"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.drop_column("event_at")
