"""What anyone may read without a key: the datasets' metadata (never a record, a holder or a
count of either), for the public DCAT-AP catalogue (catalog/serving/dcat.py)."""
from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from catalog.db.models import Dataset, DatasetVersion
from catalog.service import Catalog

FIELDS = ("title", "description", "certificate_type", "type_version", "department", "department_name",
          "sharing", "steward", "update_cycle")


def _aware(t: datetime | None) -> datetime | None:
    """SQLite gives the stored UTC time back without its zone."""
    return None if t is None or t.tzinfo else t.replace(tzinfo=UTC)


def public_datasets(catalog: Catalog) -> list[dict]:
    """Each dataset's stewarded metadata, its current version, when its first version was
    published (`issued`) and when its current one was (`modified`)."""
    first = (sa.select(DatasetVersion.dataset_id, sa.func.min(DatasetVersion.published_at).label("issued"))
             .group_by(DatasetVersion.dataset_id).subquery())
    current = aliased(DatasetVersion)
    with catalog.session() as s:
        rows = s.execute(sa.select(Dataset, first.c.issued, current.published_at)
                         .outerjoin(first, first.c.dataset_id == Dataset.id)
                         .outerjoin(current, sa.and_(current.dataset_id == Dataset.id,
                                                     current.version == Dataset.current_version))
                         .order_by(Dataset.id)).all()
    return [{"dataset": ds.id, **{k: getattr(ds, k) for k in FIELDS}, "version": ds.current_version,
             "issued": _aware(issued), "modified": _aware(modified)} for ds, issued, modified in rows]
