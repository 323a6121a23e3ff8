"""audit_append: on PostgreSQL the audit chain is extended by the database in one statement

The function takes the head under its row lock, numbers and hashes the given entries exactly as
catalog/serving/audit.py does (SHA-256 of prev_hash, seq and the entry's canonical JSON, which the
caller serialises and sends as `body`), inserts them and moves the head: one round trip per
append, whichever process appends. The entries come as one JSON array (json_to_recordset), its
JSON columns as JSON text (json_to_recordset refuses \u0000 in a json field, the json type
keeps it): a batch of 64 costs the client a third of what one array parameter per column did. Other
databases keep appending from Python.

Revision ID: 0010
Revises: 0009
"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

FUNCTION = r"""
CREATE OR REPLACE FUNCTION audit_append(entries json) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  s bigint; h text; e record;
BEGIN
  SELECT seq, hash INTO s, h FROM audit_head WHERE id = 1 FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'audit_head has no row 1: the audit chain has no head';
  END IF;
  FOR e IN SELECT * FROM json_to_recordset(entries) AS x(at timestamptz, department text,
      purpose text, action text, holder text, datasets text, fields text, subject text,
      outcome text, detail text, body text) LOOP
    s := s + 1;
    INSERT INTO audit_log (at, department, purpose, action, holder, datasets, fields, subject,
                           outcome, detail, seq, prev_hash, entry_hash)
      VALUES (e.at, e.department, e.purpose, e.action, e.holder, e.datasets::json, e.fields::json,
              e.subject, e.outcome, e.detail::json, s, h,
              encode(sha256(convert_to(h || E'\n' || s || E'\n' || e.body, 'UTF8')), 'hex'))
      RETURNING entry_hash INTO h;
  END LOOP;
  UPDATE audit_head SET seq = s, hash = h WHERE id = 1;
  RETURN s;
END $$
"""


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_append(json)")
