"""source pull state: watermarks and the file ledger (issue 4)

Revision ID: 0003
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('source_watermarks',
    sa.Column('source_id', sa.String(length=128), nullable=False),
    sa.Column('column', sa.String(length=128), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('run_key', sa.String(length=255), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], ),
    sa.PrimaryKeyConstraint('source_id')
    )
    op.create_table('taken_files',
    sa.Column('source_id', sa.String(length=128), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('run_key', sa.String(length=255), nullable=False),
    sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], ),
    sa.PrimaryKeyConstraint('source_id', 'sha256')
    )


def downgrade() -> None:
    op.drop_table('taken_files')
    op.drop_table('source_watermarks')
