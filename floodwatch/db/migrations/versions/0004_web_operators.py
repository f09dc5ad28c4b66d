"""web operators

Revision ID: 0004
Revises: 0003

"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_user",
        sa.Column("username", sa.String(), nullable=False),
        sa.Column("password_hash", sa.String(), nullable=False),
        sa.Column("display_name", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("username"),
    )
    op.create_table(
        "event_note",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["event.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("event_note", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_event_note_event_id"), ["event_id"], unique=False)

    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ack_by", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("ack_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("false_alarm", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_column("false_alarm")
        batch_op.drop_column("ack_at")
        batch_op.drop_column("ack_by")

    with op.batch_alter_table("event_note", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_note_event_id"))

    op.drop_table("event_note")
    op.drop_table("web_user")
