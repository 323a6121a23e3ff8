"""dataset metadata kept by the catalogue (description, department name) and its history

Revision ID: 0008
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('description', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('department_name', sa.String(length=255), nullable=True))
    op.create_table('dataset_metadata_changes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('dataset_id', sa.String(length=128), nullable=False),
    sa.Column('field', sa.String(length=32), nullable=False),
    sa.Column('old_value', sa.Text(), nullable=True),
    sa.Column('new_value', sa.Text(), nullable=True),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changed_by', sa.String(length=255), nullable=True),
    sa.Column('source_id', sa.String(length=128), nullable=True),
    sa.Column('source_file', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('dataset_metadata_changes', schema=None) as batch_op:
        batch_op.create_index('ix_metadata_changes_dataset', ['dataset_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('dataset_metadata_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_metadata_changes_dataset')
    op.drop_table('dataset_metadata_changes')
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.drop_column('department_name')
        batch_op.drop_column('description')
