"""signing_keys and key_material: the public keys and the signed key status in the catalogue,
so that every machine that publishes checks its signing key against them and every API host
serves the same JWKS (the key directory's jwks.json and key-status.jws stay as copies)

The tables are filled by the next `exchange keys ...` command or publish on the machine that
keeps the key directory (catalog/publish/key_status.py write_key_material).

Revision ID: 0014_public_keys
Revises: 0013_sessions_and_run_owner
"""
import sqlalchemy as sa
from alembic import op

revision = "0014_public_keys"
down_revision = "0013_sessions_and_run_owner"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(length=128), nullable=False),
        sa.Column("jwk", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("retired_at", sa.String(length=32), nullable=True),
        sa.Column("compromised_at", sa.String(length=32), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kid"),
    )
    op.create_table(
        "key_material",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("jwks", sa.Text(), nullable=False),
        sa.Column("key_status", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("key_material")
    op.drop_table("signing_keys")
