"""quality gates: quarantine queue and per-run quality record

Revision ID: 0005
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('quarantine_entries',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('source_id', sa.String(length=128), nullable=False),
    sa.Column('dataset_id', sa.String(length=128), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('values', sa.Text(), nullable=True),
    sa.Column('first_run_id', sa.Integer(), nullable=False),
    sa.Column('last_run_id', sa.Integer(), nullable=False),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_run_id', sa.Integer(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reviewed_by', sa.String(length=128), nullable=True),
    sa.Column('review_note', sa.Text(), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], ),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ),
    sa.ForeignKeyConstraint(['first_run_id'], ['runs.id'], ),
    sa.ForeignKeyConstraint(['last_run_id'], ['runs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('quarantine_entries', schema=None) as batch_op:
        batch_op.create_index('ix_quarantine_source_key', ['source_id', 'key'], unique=True)
        batch_op.create_index('ix_quarantine_dataset_state', ['dataset_id', 'state'], unique=False)
    op.create_table('run_quality',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('silo_columns', sa.JSON(), nullable=True),
    sa.Column('unmapped_columns', sa.JSON(), nullable=True),
    sa.Column('new_columns', sa.JSON(), nullable=True),
    sa.Column('data_docs', sa.Text(), nullable=True),
    sa.Column('size_gate', sa.JSON(), nullable=True),
    sa.Column('approved_by', sa.String(length=128), nullable=True),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('approval_note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ),
    sa.PrimaryKeyConstraint('run_id')
    )


def downgrade() -> None:
    op.drop_table('run_quality')
    with op.batch_alter_table('quarantine_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_quarantine_dataset_state')
        batch_op.drop_index('ix_quarantine_source_key')
    op.drop_table('quarantine_entries')
