"""This exchange's witness cosignatures on peers' checkpoints (table `cosignatures`): written
by the peer sync after it verified a checkpoint, published at GET /v1/federation/cosignatures."""
from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import Engine

from catalog.db.models import Cosignature

_t = Cosignature.__table__


def add(engine: Engine, dataset: str, version: int, peer: str, checkpoint: str, cosignature: str,
        kid: str, now: datetime) -> bool:
    """Keep a cosignature; the same dataset and version twice keeps the first (False)."""
    try:
        with engine.begin() as c:
            if c.scalar(sa.select(_t.c.version).where(_t.c.dataset_id == dataset, _t.c.version == version)):
                return False
            c.execute(sa.insert(_t).values(dataset_id=dataset, version=version, peer=peer, checkpoint=checkpoint,
                                           cosignature=cosignature, kid=kid, cosigned_at=now))
    except sa.exc.IntegrityError:       # another writer kept one meanwhile: the first stays
        return False
    return True


def listing(engine: Engine, dataset: str | None = None, limit: int = 100) -> list[dict]:
    """Newest first: {"dataset","version","peer","checkpoint","cosignature","kid","cosigned_at"}."""
    q = sa.select(_t).order_by(_t.c.cosigned_at.desc(), _t.c.dataset_id, _t.c.version.desc()).limit(limit)
    if dataset:
        q = q.where(_t.c.dataset_id == dataset)
    with engine.connect() as c:
        rows = c.execute(q).mappings().all()
    out = []
    for r in rows:
        at = r["cosigned_at"]
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
        out.append({"dataset": r["dataset_id"], "version": r["version"], "peer": r["peer"],
                    "checkpoint": r["checkpoint"], "cosignature": r["cosignature"], "kid": r["kid"],
                    "cosigned_at": at.isoformat()})
    return out
