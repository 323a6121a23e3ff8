"""consumer access: departments, credentials, grants; hash-chained audit log

Revision ID: 0007
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('departments',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('credentials',
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('department_id', sa.String(length=64), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], ),
    sa.PrimaryKeyConstraint('key_id')
    )
    op.create_table('grants',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('department_id', sa.String(length=64), nullable=False),
    sa.Column('dataset_id', sa.String(length=128), nullable=False),
    sa.Column('purposes', sa.JSON(), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], ),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_grants_department', 'grants', ['department_id', 'dataset_id'])
    op.create_table('audit_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '" + "0" * 64 + "')")
    with op.batch_alter_table('audit_log', schema=None) as b:
        b.add_column(sa.Column('seq', sa.BigInteger(), nullable=True))
        b.add_column(sa.Column('holder', sa.String(length=64), nullable=True))
        b.add_column(sa.Column('datasets', sa.JSON(), nullable=True))
        b.add_column(sa.Column('fields', sa.JSON(), nullable=True))
        b.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        b.add_column(sa.Column('entry_hash', sa.String(length=64), nullable=True))
        b.create_index('ix_audit_log_seq', ['seq'], unique=True)
        b.create_index('ix_audit_log_holder', ['holder', 'seq'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as b:
        b.drop_index('ix_audit_log_holder')
        b.drop_index('ix_audit_log_seq')
        for c in ('entry_hash', 'prev_hash', 'fields', 'datasets', 'holder', 'seq'):
            b.drop_column(c)
    op.drop_table('audit_head')
    op.drop_index('ix_grants_department', table_name='grants')
    op.drop_table('grants')
    op.drop_table('credentials')
    op.drop_table('departments')
