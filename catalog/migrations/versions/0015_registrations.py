"""registrations: each source's registration file as registered (its TOML text), so that every
scheduler, DAG processor and worker reads the same sources from the catalogue instead of a
local folder (issue #16)

Filled by `exchange register FILE` and `exchange sources sync [DIR]`; the files of an existing
sources folder go in with `exchange sources sync` after the upgrade.

Revision ID: 0015_registrations
Revises: 0014_public_keys
"""
import sqlalchemy as sa
from alembic import op

revision = "0015_registrations"
down_revision = "0014_public_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registrations",
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("toml", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registered_by", sa.String(length=255), nullable=True),
        sa.Column("origin", sa.String(length=1024), nullable=True),
        sa.PrimaryKeyConstraint("source_id"),
    )


def downgrade() -> None:
    op.drop_table("registrations")
