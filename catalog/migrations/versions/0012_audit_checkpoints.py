"""audit_checkpoints: signed checkpoints of the audit chain; entries from before the chain joined to it

Checkpoints (catalog/serving/audit_checkpoints.py) hold the chain's size and head hash at a time, signed
as a compact JWS with the exchange's Ed25519 key, so that anyone holding one can check later
that the log only grew. Entries written before migration 0007 had no chain position; audit-verify
now fails on any entry outside the chain, so they are appended to the chain here (in id order,
content unchanged), as any new entry would be.

Revision ID: 0012_audit_checkpoints
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0012_audit_checkpoints"
down_revision = "0011_quarantine_rows"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("signed", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"))
    op.create_index("ix_audit_checkpoints_size", "audit_checkpoints", ["size"])
    _chain_legacy_entries(op.get_bind())


def _chain_legacy_entries(conn) -> None:
    from catalog.serving import audit  # lazy: only while this migration runs

    log, head = audit._log, audit._head
    cols = [log.c[k] for k in ("id", *audit.BODY_KEYS)]
    rows = conn.execute(sa.select(*cols).where(log.c.seq.is_(None)).order_by(log.c.id)).mappings().all()
    if not rows:
        return
    seq, prev = conn.execute(sa.select(head.c.seq, head.c.hash).where(head.c.id == 1)
                             .with_for_update()).one()
    for r in rows:
        seq += 1
        h = audit.entry_hash(seq, prev, audit.body_bytes(r))
        conn.execute(sa.update(log).where(log.c.id == r["id"]).values(seq=seq, prev_hash=prev, entry_hash=h))
        prev = h
    conn.execute(sa.update(head).where(head.c.id == 1).values(seq=seq, hash=prev))


def downgrade() -> None:
    op.drop_index("ix_audit_checkpoints_size", table_name="audit_checkpoints")
    op.drop_table("audit_checkpoints")
