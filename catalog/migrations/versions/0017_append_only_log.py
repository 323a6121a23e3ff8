"""append-only log: each dataset is an RFC 9162 log of record states (docs/verification.md)

records          one row per record state appended (its version, its log leaf index); the
                 rows of versions before the log (one per record per version) stay as history:
                 + leaf_hash      hex, the leaf's hash (null on rows from before the log: read
                                  from their version's tree.bin, or the log's tiles)
                 + superseded_in  the version whose newer state replaced this row (null: current)
dataset_versions + first_leaf     the log index of the version's first appended leaf (null: a
                                  version from before the log)
                 + record_count   records in the version's current state (tree_size is the log's
                                  size once the dataset has a log)
                 + map_bits, map_root  the verifiable map of record id -> latest leaf
                 + checkpoint     the C2SP signed-note checkpoint of the version
datasets         + log_from       the first version that is a checkpoint of the log (the version
                                  current at the first publish after this migration: its tree
                                  becomes the log's first leaves, so its head, and every bundle
                                  signed under it, stays a valid checkpoint)

Every row of a version older than its dataset's current one is marked superseded by the next
version (before the log, each version held every record).

Revision ID: 0017_append_only_log
Revises: 0016_store_keys
"""
import sqlalchemy as sa
from alembic import op

revision = "0017_append_only_log"
down_revision = "0016_store_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("records") as b:
        b.add_column(sa.Column("leaf_hash", sa.String(64), nullable=True))
        b.add_column(sa.Column("superseded_in", sa.Integer(), nullable=True))
    with op.batch_alter_table("dataset_versions") as b:
        b.add_column(sa.Column("first_leaf", sa.BigInteger(), nullable=True))
        b.add_column(sa.Column("record_count", sa.BigInteger(), nullable=True))
        b.add_column(sa.Column("map_bits", sa.Integer(), nullable=True))
        b.add_column(sa.Column("map_root", sa.String(64), nullable=True))
        b.add_column(sa.Column("checkpoint", sa.Text(), nullable=True))
    with op.batch_alter_table("datasets") as b:
        b.add_column(sa.Column("log_from", sa.Integer(), nullable=True))
    op.execute("UPDATE dataset_versions SET record_count = tree_size")
    op.execute("UPDATE records SET superseded_in = version + 1 WHERE version < "
               "(SELECT d.current_version FROM datasets d WHERE d.id = records.dataset_id)")
    op.create_index("ix_records_dataset_current", "records", ["dataset_id", "superseded_in", "record_id"])


def downgrade() -> None:
    op.drop_index("ix_records_dataset_current", table_name="records")
    with op.batch_alter_table("datasets") as b:
        b.drop_column("log_from")
    with op.batch_alter_table("dataset_versions") as b:
        for c in ("checkpoint", "map_root", "map_bits", "record_count", "first_leaf"):
            b.drop_column(c)
    with op.batch_alter_table("records") as b:
        b.drop_column("superseded_in")
        b.drop_column("leaf_hash")
