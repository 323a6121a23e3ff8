"""The row state matched by position (exchange/row_state.py Matcher(positional=), used when the
mirror is aligned with it: exchange/aligned.py): the same state rows as the full Matcher for
rows found at their position and for rows searched (moved, repeated, changed), the same scope
and hand-off, with no sorted hashes built when every row was found by position."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from base import staging
from exchange import row_state


def _write(tmp_path, h, licences, accepted) -> tuple:
    table = pa.table([row_state.as_array(h), pa.array(licences, pa.string()), pa.array(accepted),
                      pa.array([i % 7 == 0 for i in range(len(h))]),
                      pa.nulls(len(h), pa.list_(pa.string())), pa.nulls(len(h), pa.list_(pa.string()))],
                     schema=row_state.SCHEMA)
    path = tmp_path / "rows.arrow"
    with staging.transient_writer(path, table.schema) as w:
        for batch in table.to_batches(max_chunksize=97):        # several chunks, as a state has
            w.write_batch(batch)
    hashes = staging.read_table(path, ["row_hash"]).column(0)
    return row_state.Matcher(path), row_state.Matcher(path, positional=hashes)


def _state(seed: int, n: int = 500):
    """Equal rows (some accepted, some not), pairs sharing their first 8 bytes only, crowded
    first halves (odd seeds)."""
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    for i in range(0, n - 2, 31):
        h[i + 1] = h[i]
        h[i + 2] = h[i] if i % 62 == 0 else h[i + 2]
    for i in range(7, n - 1, 43):
        h[i + 1, :8] = h[i, :8]
    if seed % 2:
        h[:, :8] &= 0x07
    accepted = [bool(x) for x in rng.random(n) < 0.8]
    licences = [f"L{i}" if a else rng.choice([None, f"L{i}", f"L{i - 1}"]) for i, a in enumerate(accepted)]
    return h, licences, accepted


def _matched(full, pos, run, state):
    """The run's state rows both ways: the full Matcher's search, and by position where the
    run's row is the state's there (as _hashed does), searched elsewhere."""
    n = min(len(run), len(state))
    same = np.zeros(len(run), bool)
    same[:n] = (run[:n] == state[:n]).all(axis=1)
    idx = np.empty(len(run), np.int64)
    idx[same] = pos.at(np.flatnonzero(same))
    idx[~same] = pos.index(run[~same])
    return full.index(run), idx, same


@pytest.mark.parametrize("seed", range(4))
def test_rows_found_by_position_or_searched_are_the_full_matchers(tmp_path, seed):
    h, licences, accepted = _state(seed)
    full, pos = _write(tmp_path, h, licences, accepted)
    assert (pos.at(np.arange(len(h))) == full.index(h)).all()
    rng = np.random.default_rng(seed + 50)
    run = h.copy()
    run[40:60] = h[41:61]                                   # rows moved up by one
    run[100:110] = h[0:10]                                  # repeats of rows found at their place
    run[::23] = rng.integers(0, 256, (len(run[::23]), 16), dtype=np.uint8)     # changed rows
    run = np.concatenate([run, h[rng.integers(0, len(h), 60)]])                # and added ones
    want, got, same = _matched(full, pos, run, h)
    assert (got == want).all()
    assert same.sum() > 300 and (got[~same] >= 0).sum() > 60 and (got == -1).sum() > 15
    checked = pa.array([f"L{i}" for i in rng.integers(0, len(h), 15)] + [None], pa.string())
    back_w, delta_w = row_state.scope(full, want, checked)
    back_g, delta_g = row_state.scope(pos, got, checked)
    assert back_g.tolist() == back_w.tolist() and delta_g.equals(delta_w) and len(back_w) and len(delta_w)
    assert row_state.rows_table(run, got, pos).equals(row_state.rows_table(run, want, full))


def test_a_moved_row_and_a_repeat_of_a_row_found_in_place_are_found(tmp_path):
    a, b, c, x = (np.full(16, v, np.uint8) for v in (1, 2, 3, 9))
    full, pos = _write(tmp_path, np.stack([a, b, c]), ["LA", "LB", "LC"], [True, True, True])
    run = np.stack([a, a, x, b, c])          # A in place, then A again, a new row, B and C moved
    want, got, same = _matched(full, pos, run, np.stack([a, b, c]))
    assert same.tolist() == [True, False, False, False, False]
    assert got.tolist() == want.tolist() == [0, 0, -1, 1, 2]
    back, delta = row_state.scope(pos, got, pa.array([], pa.string()))
    assert back.tolist() == [0, 1] and delta.to_pylist() == ["LA"]     # A twice: checked


def test_no_rows_are_sorted_when_every_row_is_found_by_position(tmp_path):
    h, licences, accepted = _state(3)
    full, pos = _write(tmp_path, h, licences, accepted)
    idx = pos.at(np.arange(len(h)))
    assert pos._index is None
    assert (idx == full.index(h)).all()
    assert row_state.scope(pos, idx, pa.array([], pa.string()))[1].equals(
        row_state.scope(full, idx, pa.array([], pa.string()))[1])


def test_the_hash_order_is_hi_lo_position():
    rng = np.random.default_rng(5)
    for n in (0, 1, 2, 1000, 5000):
        keys = rng.integers(0, 2**63, (n, 2), dtype=np.uint64)
        keys[: n // 2, 0] &= np.uint64(0xFF)             # crowded first halves (low bits only)
        keys[1:n:9] = keys[0:n - 1:9]                    # equal hashes
        hi, lo = keys[:, 0].copy(), keys[:, 1].copy()
        assert (row_state._hash_order(hi, lo) == np.lexsort((np.arange(n), lo, hi))).all()
