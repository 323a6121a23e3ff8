"""what a changed record costs the catalogue: nothing that nobody reads

record_events    - leaf_hash   read by nobody (a state's leaf hash is its `records` row's:
                               same record id, same version); a downgrade refills it from there
                 - at          always its version's published_at (the publish's one `now`): read
                               from dataset_versions; a downgrade refills it from there
records          - ix_records_dataset_status  (dataset_id, superseded_in, status): only the
                   current withdrawn records were counted by it
                 + ix_records_dataset_withdrawn  the same columns, of the current withdrawn records
                   alone (a partial index: a changed record adds no entry to it unless withdrawn;
                   all three columns, so that a planner without statistics prefers it to
                   ix_records_dataset_licence for the count)

Revision ID: 0020_lean_index
Revises: 0019_change_detection
"""
import sqlalchemy as sa
from alembic import op

revision = "0020_lean_index"
down_revision = "0019_change_detection"
branch_labels = None
depends_on = None

WITHDRAWN = sa.text("superseded_in IS NULL AND status = 'withdrawn'")


def upgrade() -> None:
    with op.batch_alter_table("record_events") as b:
        b.drop_column("leaf_hash")
        b.drop_column("at")
    op.drop_index("ix_records_dataset_status", table_name="records")
    op.create_index("ix_records_dataset_withdrawn", "records", ["dataset_id", "superseded_in", "status"],
                    sqlite_where=WITHDRAWN, postgresql_where=WITHDRAWN)


def downgrade() -> None:
    op.drop_index("ix_records_dataset_withdrawn", table_name="records")
    op.create_index("ix_records_dataset_status", "records", ["dataset_id", "superseded_in", "status"])
    with op.batch_alter_table("record_events") as b:
        b.add_column(sa.Column("leaf_hash", sa.String(64), nullable=True))
        b.add_column(sa.Column("at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE record_events SET leaf_hash = (SELECT r.leaf_hash FROM records r WHERE "
               "r.record_id = record_events.record_id AND r.version = record_events.version) "
               "WHERE change != 'withdrawn'")
    op.execute("UPDATE record_events SET at = (SELECT v.published_at FROM dataset_versions v WHERE "
               "v.dataset_id = record_events.dataset_id AND v.version = record_events.version)")
    with op.batch_alter_table("record_events") as b:
        b.alter_column("at", existing_type=sa.DateTime(timezone=True), nullable=False)
