"""dashboard sessions kept in the catalogue (a logout ends them in every worker), and the owner
of a run started outside Airflow (host, pid, process start), so a killed one can be found

Revision ID: 0013_sessions_and_run_owner
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0013_sessions_and_run_owner"
down_revision = "0012_audit_checkpoints"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dashboard_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["key_id"], ["credentials.key_id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("owner_host", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("owner_pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("owner_start", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("owner_start")
        batch.drop_column("owner_pid")
        batch.drop_column("owner_host")
    op.drop_table("dashboard_sessions")
