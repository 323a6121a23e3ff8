"""quarantine rows: one entry per quarantined row, and the published record it holds back

An entry was keyed by (source, licence number), so rows sharing a licence number (conflicting
duplicates) shared one entry: the queue showed fewer rows than the run quarantined. The key is
now (source, licence number, row hash): the hash of the silo row's content ("/2", "/3" … for
copies word for word). `held_record_id`: the record of the current version whose licence
number this entry holds back (carried unchanged, shown as disputed until a steward reviews).
Entries kept from before get row_hash '' and take the row's hash when next seen.

Revision ID: 0011_quarantine_rows
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0011_quarantine_rows"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("quarantine_entries") as batch:
        batch.add_column(sa.Column("row_hash", sa.String(length=40), nullable=False, server_default=""))
        batch.add_column(sa.Column("held_record_id", sa.String(length=32), nullable=True))
        batch.create_index("ix_quarantine_source_key_row", ["source_id", "key", "row_hash"], unique=True)
        batch.drop_index("ix_quarantine_source_key")     # after: MariaDB keeps an index on the FK
        batch.create_index("ix_quarantine_dataset_key", ["dataset_id", "key"], unique=False)
        batch.create_index("ix_quarantine_held_record", ["held_record_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("quarantine_entries") as batch:
        batch.drop_index("ix_quarantine_held_record")
        batch.drop_index("ix_quarantine_dataset_key")
        batch.drop_index("ix_quarantine_source_key_row")
        batch.drop_column("held_record_id")
        batch.drop_column("row_hash")
        batch.create_index("ix_quarantine_source_key", ["source_id", "key"], unique=True)
