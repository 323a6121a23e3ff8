"""federation: peers, mirrored datasets, cosignatures, access reports owed to peers

peers                 another exchange this one mirrors from: its URL and its pinned keys
mirrors               a peer's dataset held here (no re-signing): the last good version, the state
cosignatures          this exchange's witness cosignature (C2SP tlog-cosignature) on a peer checkpoint it verified
peer_access_reports   a local consumer's access to a mirrored record, owed to the record's origin

Revision ID: 0023_federation
Revises: 0022_notices_objections
"""
import sqlalchemy as sa
from alembic import op

revision = "0023_federation"
down_revision = "0022_notices_objections"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "peers",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("url", sa.String(1024), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("keys", sa.JSON, nullable=False),
        sa.Column("key_status", sa.Text),
        sa.Column("credential", sa.String(255)),
        sa.Column("added_at", TZ, nullable=False),
        sa.Column("added_by", sa.String(255)),
        sa.Column("last_sync_at", TZ),
        sa.Column("last_outcome", sa.String(16)),
        sa.Column("last_error", sa.Text))
    op.create_table(
        "mirrors",
        sa.Column("dataset_id", sa.String(128), sa.ForeignKey("datasets.id"), primary_key=True),
        sa.Column("peer", sa.String(64), nullable=False),     # kept after the peer is removed
        sa.Column("source_id", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer),
        sa.Column("head_hash", sa.String(64)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("checked_at", TZ),
        sa.Column("synced_at", TZ))
    op.create_index("ix_mirrors_peer", "mirrors", ["peer"])
    op.create_table(
        "cosignatures",
        sa.Column("dataset_id", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("peer", sa.String(64), nullable=False),
        sa.Column("checkpoint", sa.Text, nullable=False),
        sa.Column("cosignature", sa.Text, nullable=False),
        sa.Column("kid", sa.String(128), nullable=False),
        sa.Column("cosigned_at", TZ, nullable=False))
    op.create_table(
        "peer_access_reports",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("peer", sa.String(64), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("department", sa.String(128), nullable=False),
        sa.Column("purpose", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(64)),
        sa.Column("datasets", sa.JSON),
        sa.Column("records", sa.JSON),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TZ, nullable=False),
        sa.Column("delivered_at", TZ),
        sa.Column("last_error", sa.Text))
    op.create_index("ix_peer_access_reports_due", "peer_access_reports", ["peer", "state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_peer_access_reports_due", "peer_access_reports")
    op.drop_table("peer_access_reports")
    op.drop_table("cosignatures")
    op.drop_index("ix_mirrors_peer", "mirrors")
    op.drop_table("mirrors")
    op.drop_table("peers")
