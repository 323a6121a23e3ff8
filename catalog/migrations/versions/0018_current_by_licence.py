"""indexes of the current records by licence number and by status

A run that holds only its changed rows (log_version.Delta) reads the current records of its
licence numbers, and counts the current withdrawn ones, without a pass over the dataset:
records  + ix_records_dataset_licence  (dataset_id, superseded_in, licence_number)
         + ix_records_dataset_status   (dataset_id, superseded_in, status)

Revision ID: 0018_current_by_licence
Revises: 0017_append_only_log
"""
from alembic import op

revision = "0018_current_by_licence"
down_revision = "0017_append_only_log"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_records_dataset_licence", "records", ["dataset_id", "superseded_in", "licence_number"])
    op.create_index("ix_records_dataset_status", "records", ["dataset_id", "superseded_in", "status"])


def downgrade() -> None:
    op.drop_index("ix_records_dataset_status", table_name="records")
    op.drop_index("ix_records_dataset_licence", table_name="records")
