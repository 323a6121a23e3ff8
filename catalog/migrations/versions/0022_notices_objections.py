"""change notices and objections (数据异议)

departments      + notice_endpoint, objection_days
subscriptions    a department's standing request to be told of changes (a dataset, or a holder)
notice_events    a signed CloudEvents body, shared by the recipients that see the same fields
notices          one notice owed to one department, with its delivery state; seq is the cursor
notice_progress  the last version of each dataset turned into notices
objections       a consuming department's objection to a shared record, and its outcome

Revision ID: 0022_notices_objections
Revises: 0021_map_cover
"""
import sqlalchemy as sa
from alembic import op

revision = "0022_notices_objections"
down_revision = "0021_map_cover"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("departments") as b:
        b.add_column(sa.Column("notice_endpoint", sa.String(1024), nullable=True))
        b.add_column(sa.Column("objection_days", sa.Integer, nullable=True))
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("department_id", sa.String(64), sa.ForeignKey("departments.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("dataset_id", sa.String(128)),
        sa.Column("holder_key", sa.String(64)),
        sa.Column("purpose", sa.String(255), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("revoked_at", TZ),
        sa.Column("created_by", sa.String(64)))
    op.create_index("ix_subscriptions_dataset", "subscriptions", ["dataset_id"])
    op.create_index("ix_subscriptions_holder", "subscriptions", ["holder_key"])
    op.create_index("ix_subscriptions_department", "subscriptions", ["department_id"])
    op.create_table(
        "notice_events",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("dataset_id", sa.String(128)),
        sa.Column("record_id", sa.String(32)),
        sa.Column("version", sa.Integer),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("created_at", TZ, nullable=False))
    op.create_table(
        "notices",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("department_id", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(64), sa.ForeignKey("notice_events.event_id"), nullable=False),
        sa.Column("subscription_id", sa.Integer),
        sa.Column("objection_id", sa.Integer),
        sa.Column("holder_key", sa.String(64)),
        sa.Column("purpose", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=False),
        sa.Column("first_attempt_at", TZ),
        sa.Column("finished_at", TZ),
        sa.Column("last_error", sa.Text))
    op.create_index("ix_notices_department_event", "notices", ["department_id", "event_id"], unique=True)
    op.create_index("ix_notices_department_seq", "notices", ["department_id", "seq"])
    op.create_index("ix_notices_state_due", "notices", ["state", "next_attempt_at"])
    op.create_table(
        "notice_progress",
        sa.Column("dataset_id", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("expired_through", sa.Date),
        sa.Column("updated_at", TZ, nullable=False))
    op.create_table(
        "objections",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("record_id", sa.String(32), nullable=False),
        sa.Column("dataset_id", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("department_id", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("evidence", sa.Text),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("filed_at", TZ, nullable=False),
        sa.Column("due_at", TZ, nullable=False),
        sa.Column("resolved_at", TZ),
        sa.Column("resolved_by", sa.String(255)),
        sa.Column("resolution", sa.Text),
        sa.Column("corrected_version", sa.Integer),
        sa.Column("overdue_alerted_at", TZ),
        sa.Column("notified_at", TZ))
    op.create_index("ix_objections_record_state", "objections", ["record_id", "state"])
    op.create_index("ix_objections_dataset_state", "objections", ["dataset_id", "state"])


def downgrade() -> None:
    for t in ("objections", "notice_progress", "notices", "notice_events", "subscriptions"):
        op.drop_table(t)
    with op.batch_alter_table("departments") as b:
        b.drop_column("objection_days")
        b.drop_column("notice_endpoint")
