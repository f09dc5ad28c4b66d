"""delivery parts: each part of a delivery recorded on its own, the chart plan, priorities

`delivery_part` keeps one row per part of a delivery that is done (a text chunk
or a chart Telegram accepted, with its message id and real sent time; or a chart
that could not be drawn), numbered in the alert's plan, so a restart sends
exactly the missing parts and a new active instance rebuilds Telegram's flood
limits from the sent times. `alert.charts` fixes an alert's hydrographs at its
first delivery attempt. `delivery.priority` lets a started delivery and an
operators' note about a broken chat go ahead of a chat's backlog.

A delivery still pending with parts sent under the old scheme (its
`message_ids`) gets a part row per recorded id, without a sent time: those are
the first parts of its plan, as the old sender sent them in that order.

Revision ID: 0011
Revises: 0010

"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _carry_over_progress() -> None:
    """Part rows for pending deliveries that had already sent some parts."""
    conn = op.get_bind()
    rows = conn.execute(
        sa.text("SELECT id, chat_id, message_ids FROM delivery WHERE status = 'pending'")
    ).fetchall()
    insert = sa.text(
        "INSERT INTO delivery_part (delivery_id, seq, chat_id, message_id)"
        " VALUES (:delivery_id, :seq, :chat_id, :message_id)"
    )
    for delivery_id, chat_id, message_ids in rows:
        ids = json.loads(message_ids) if isinstance(message_ids, str) else message_ids or []
        for seq, message_id in enumerate(ids):
            conn.execute(
                insert,
                {"delivery_id": delivery_id, "seq": seq, "chat_id": chat_id,
                 "message_id": message_id},
            )  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "delivery_part",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["delivery_id"], ["delivery.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("delivery_id", "seq", name="uq_delivery_part"),
    )
    with op.batch_alter_table("delivery_part", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_delivery_part_sent_at"), ["sent_at"], unique=False)
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.add_column(sa.Column("charts", sa.JSON(), nullable=True))
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
    _carry_over_progress()


def downgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_column("priority")
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.drop_column("charts")
    with op.batch_alter_table("delivery_part", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_part_sent_at"))
    op.drop_table("delivery_part")
