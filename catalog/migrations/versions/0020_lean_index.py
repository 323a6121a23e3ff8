"""what a changed record costs the catalogue: nothing that nobody reads, no index of history

record_events    - leaf_hash   read by nobody (a state's leaf hash is its `records` row's:
                               same record id, same version); a downgrade refills it from there
                 - at          always its version's published_at (the publish's one `now`): read
                               from dataset_versions; a downgrade refills it from there
records          ix_records_dataset_current  (dataset_id, record_id)       } partial: of the
                 ix_records_dataset_licence  (dataset_id, licence_number,  } current records
                                              superseded_in)           }
                   alone (WHERE superseded_in IS NULL; every query by them says so): a changed
                   record's old state leaves them instead of moving to the superseded ones,
                   so they hold one entry a record and never grow with history (superseded_in,
                   null in every entry, lets SQLite read record ids by licence number from the
                   index alone)
                 - ix_records_dataset_status  (dataset_id, superseded_in, status): it only
                   counted the current withdrawn records;
                 + ix_records_dataset_withdrawn  (dataset_id, status) of those alone (no entry
                   for a changed record unless withdrawn; two columns, so that a planner
                   without statistics prefers it to the others for the count)

Revision ID: 0020_lean_index
Revises: 0019_change_detection
"""
import sqlalchemy as sa
from alembic import op

revision = "0020_lean_index"
down_revision = "0019_change_detection"
branch_labels = None
depends_on = None

CURRENT = sa.text("superseded_in IS NULL")
WITHDRAWN = sa.text("superseded_in IS NULL AND status = 'withdrawn'")


def upgrade() -> None:
    with op.batch_alter_table("record_events") as b:
        b.drop_column("leaf_hash")
        b.drop_column("at")
    # one at a time, so that an index led by dataset_id stays for the foreign key (MariaDB/MySQL
    # refuses to drop the last one; they have no partial indexes: theirs are whole)
    op.drop_index("ix_records_dataset_status", table_name="records")
    op.drop_index("ix_records_dataset_licence", table_name="records")
    op.create_index("ix_records_dataset_licence", "records", ["dataset_id", "licence_number", "superseded_in"],
                    sqlite_where=CURRENT, postgresql_where=CURRENT)
    op.drop_index("ix_records_dataset_current", table_name="records")
    op.create_index("ix_records_dataset_current", "records", ["dataset_id", "record_id"],
                    sqlite_where=CURRENT, postgresql_where=CURRENT)
    op.create_index("ix_records_dataset_withdrawn", "records", ["dataset_id", "status"],
                    sqlite_where=WITHDRAWN, postgresql_where=WITHDRAWN)


def downgrade() -> None:
    op.drop_index("ix_records_dataset_withdrawn", table_name="records")
    op.drop_index("ix_records_dataset_licence", table_name="records")
    op.create_index("ix_records_dataset_licence", "records", ["dataset_id", "superseded_in", "licence_number"])
    op.drop_index("ix_records_dataset_current", table_name="records")
    op.create_index("ix_records_dataset_current", "records", ["dataset_id", "superseded_in", "record_id"])
    op.create_index("ix_records_dataset_status", "records", ["dataset_id", "superseded_in", "status"])
    with op.batch_alter_table("record_events") as b:
        b.add_column(sa.Column("leaf_hash", sa.String(64), nullable=True))
        b.add_column(sa.Column("at", sa.DateTime(timezone=True), nullable=True))
    change = op.get_bind().dialect.identifier_preparer.quote("change")    # reserved in MariaDB
    op.execute("UPDATE record_events SET leaf_hash = (SELECT r.leaf_hash FROM records r WHERE "
               "r.record_id = record_events.record_id AND r.version = record_events.version) "
               f"WHERE {change} != 'withdrawn'")
    op.execute("UPDATE record_events SET at = (SELECT v.published_at FROM dataset_versions v WHERE "
               "v.dataset_id = record_events.dataset_id AND v.version = record_events.version)")
    with op.batch_alter_table("record_events") as b:
        b.alter_column("at", existing_type=sa.DateTime(timezone=True), nullable=False)
