"""store keys: the catalogue names a version's folder and a run's Data Docs by their key in the
store (base/storage.py, EXCHANGE_STORE_URL), relative to it, never by a machine's absolute path

dataset_versions.path  /home/x/.state/store/<dataset>/v000001  ->  store/<dataset>/v000001
run_quality.data_docs  /home/x/.state/staging/<src>/<run>/data_docs/index.html
                                                     ->  staging/<src>/<run>/data_docs/index.html
A path under the local store's root loses that root; any other absolute path keeps its layout's
tail (the store's layout is the one EXCHANGE_HOME always had: copy the home's store/ and staging/
folders into a new store under the same keys). Downgrade makes the keys absolute under a local
store's root again.

Revision ID: 0016_store_keys
Revises: 0015_registrations
"""
import re

import sqlalchemy as sa
from alembic import op

revision = "0016_store_keys"
down_revision = "0015_registrations"
branch_labels = None
depends_on = None

TAILS = {("dataset_versions", "path"): re.compile(r"(?:^|/)(store/[^/]+/v\d+)/?$"),
         ("run_quality", "data_docs"): re.compile(r"(?:^|/)(staging/[^/]+/[^/]+/data_docs/.+)$")}


def _store_root() -> str | None:
    """The local store's root directory (file:// stores), as the settings name it."""
    from base.settings import get_settings  # lazy: the settings read the environment once
    root = get_settings().store.local_path()
    return str(root) if root is not None else None


def key_for(value: str, root: str | None, tail: re.Pattern) -> str:
    if not value.startswith("/"):
        return value                                   # a key already
    if root and value.startswith(root.rstrip("/") + "/"):
        return value[len(root.rstrip("/")) + 1:].rstrip("/")
    found = tail.search(value.rstrip("/"))
    return found.group(1) if found else value


KEYS = {"dataset_versions": ("dataset_id", "version"), "run_quality": ("run_id",)}


def _rewrite(fn) -> None:
    bind = op.get_bind()
    for (table, column), tail in TAILS.items():
        pk = KEYS[table]
        t = sa.table(table, sa.column(column), *(sa.column(c) for c in pk))
        for row in bind.execute(sa.select(*(t.c[c] for c in pk), t.c[column]).where(t.c[column].is_not(None))).all():
            new = fn(row[-1], tail)
            if new != row[-1]:
                bind.execute(sa.update(t).where(*(t.c[c] == row[i] for i, c in enumerate(pk))).values({column: new}))


def upgrade() -> None:
    root = _store_root()
    _rewrite(lambda value, tail: key_for(value, root, tail))


def downgrade() -> None:
    root = _store_root()
    if root is None:
        return                                         # keys in a remote store have no local path
    _rewrite(lambda value, tail: value if value.startswith("/") else f"{root.rstrip('/')}/{value}")
