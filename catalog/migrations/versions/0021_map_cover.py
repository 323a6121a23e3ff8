"""a map bucket read from one index: ix_records_dataset_current covers the map's entries

records          ix_records_dataset_current  (dataset_id, record_id)
              -> ix_records_dataset_current  (dataset_id, record_id, leaf_index, leaf_hash,
                                              superseded_in)
                   still partial (WHERE superseded_in IS NULL): a Delta version's touched map
                   buckets (record-id ranges: catalog/publish/log_delta.py) are read from it
                   alone, in record-id order, instead of a primary-key look-up an entry; it
                   holds one entry a current record, so a version adds as many as it removes
                   (superseded_in, null in every entry, lets SQLite read them from the index
                   alone, as in ix_records_dataset_licence; MariaDB/MySQL have no partial
                   indexes: theirs is whole, as in 0020)

Revision ID: 0021_map_cover
Revises: 0020_lean_index
"""
import sqlalchemy as sa
from alembic import op

revision = "0021_map_cover"
down_revision = "0020_lean_index"
branch_labels = None
depends_on = None

CURRENT = sa.text("superseded_in IS NULL")


def _current(columns: list[str]) -> None:
    # dropped and made again at once: ix_records_dataset_licence stays for the foreign key (MariaDB)
    op.drop_index("ix_records_dataset_current", table_name="records")
    op.create_index("ix_records_dataset_current", "records", columns,
                    sqlite_where=CURRENT, postgresql_where=CURRENT)


def upgrade() -> None:
    _current(["dataset_id", "record_id", "leaf_index", "leaf_hash", "superseded_in"])


def downgrade() -> None:
    _current(["dataset_id", "record_id"])
