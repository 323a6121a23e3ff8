"""change detection: what a run carried over unchanged and what it checked

run_quality      + change_detection  JSON: mode (delta | full), reason (a full run's), carried
                                     and checked rows (exchange/row_state.py)

Revision ID: 0019_change_detection
Revises: 0018_current_by_licence
"""
import sqlalchemy as sa
from alembic import op

revision = "0019_change_detection"
down_revision = "0018_current_by_licence"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("run_quality") as b:
        b.add_column(sa.Column("change_detection", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("run_quality") as b:
        b.drop_column("change_detection")
