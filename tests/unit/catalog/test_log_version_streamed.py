"""catalog/publish/log_version.py's whole_map, its buckets hashed a range at a time, gives the
map of every entry built at once."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from catalog.publish import log_version
from catalog.publish.changes import Changes
from catalog.signing import vmap


def _ids(rng, n: int) -> list[str]:
    return [bytes(rng.integers(0, 256, 16, dtype=np.uint8)).hex() for _ in range(n)]


def _segment(ids: list[str], leaves: np.ndarray, first: int) -> log_version.Segment:
    return log_version.Segment(state=None, directory=None, first_leaf=first, leaves=leaves,
                               record_ids=pa.array(ids), added=0, changes=Changes(0, 0, 0, 0, 0), held=0,
                               withdrawn_now=0)


@pytest.mark.parametrize("batch", [1, 5, 64, vmap.BATCH])
def test_whole_map_is_the_map_of_every_entry(monkeypatch, batch):
    """Kept states (not in the segment) and the segment's appended leaves, mapped in batches of
    buckets, hash to the map of all the entries built at once; a first version likewise."""
    real = vmap.bucket_hashes
    monkeypatch.setattr(vmap, "bucket_hashes", lambda *a: real(*a, batch=batch))
    rng = np.random.default_rng(2)
    old_ids = _ids(rng, 300)
    old_leaves = rng.integers(0, 256, (300, 32), dtype=np.uint8)
    state = pa.table([pa.array(old_ids), pa.array(np.ones(300, np.int64)), pa.array(np.arange(300, dtype=np.int64)),
                      log_version.fixed(old_leaves), pa.array(["valid"] * 300), pa.array(["L"] * 300),
                      pa.array(["h"] * 300)], schema=log_version.STATE).sort_by("record_id")
    seg_ids = old_ids[::7] + _ids(rng, 50)             # some replaced, some new
    seg_leaves = rng.integers(0, 256, (len(seg_ids), 32), dtype=np.uint8)
    level, count = log_version.whole_map(state, _segment(seg_ids, seg_leaves, 300))

    by_id = {r: (i, old_leaves[i]) for i, r in enumerate(old_ids)}
    by_id.update({r: (300 + k, seg_leaves[k]) for k, r in enumerate(seg_ids)})
    ids = np.array([np.frombuffer(bytes.fromhex(r), np.uint8) for r in by_id])
    index = np.array([v[0] for v in by_id.values()], np.int64)
    leaves = np.array([v[1] for v in by_id.values()])
    want = vmap.MapLevel(real(ids, index, leaves, vmap.bits_for(len(by_id)), batch=10**9))
    assert count == len(by_id) and level.root() == want.root() and (level.hashes == want.hashes).all()

    first, n = log_version.whole_map(state.slice(0, 0), _segment(seg_ids, seg_leaves, 0))
    ids = np.array([np.frombuffer(bytes.fromhex(r), np.uint8) for r in seg_ids])
    want = vmap.MapLevel(real(ids, np.arange(len(seg_ids)), seg_leaves, vmap.bits_for(len(seg_ids)), batch=10**9))
    assert n == len(seg_ids) and (first.hashes == want.hashes).all()
