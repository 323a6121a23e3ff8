"""exchange/aligned.py: rows compared with the mirror's by position, column by column."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from exchange import aligned, row_state


def _aligned(mirror: pa.Table) -> aligned.Aligned:
    hashes = row_state.as_array(row_state.row_hashes(mirror))
    return aligned.Aligned(mirror, pa.chunked_array([hashes]), lambda: None)


def test_rows_equal_in_every_column_nulls_with_nulls():
    a = ["x", None, "", "y", None, "z", "w"]
    b = [1, 2, 3, None, 5, 6, 7]
    mirror = pa.Table.from_batches([pa.record_batch({"a": a[:3], "b": b[:3], "_row": [1, 2, 3]}),
                                    pa.record_batch({"a": a[3:], "b": b[3:], "_row": [4, 5, 6, 7]})])
    m = _aligned(mirror)
    run = pa.record_batch({"a": ["x", None, None, "y", "", "z", "w"], "b": [1, 2, 3, None, 5, 6, 8],
                           "_row": [1, 2, 3, 4, 5, 6, 7]})
    # "" is not null, nor null "": rows 3 and 5 differ, row 7 by its number
    assert m.same(run, 0).tolist() == [True, True, False, True, False, True, False]
    # the run's rows from position 2 on, across the mirror's chunks; past its end: not the same
    tail = pa.record_batch({"a": ["", "y", None, "z", "w", "v"], "b": [3, None, 5, 6, 7, 8],
                            "_row": [3, 4, 5, 6, 7, 8]})
    assert m.same(tail, 2).tolist() == [True, True, True, True, True, False]
    assert m.same(tail.slice(1, 3), 3).tolist() == [True, True, True]      # a slice (an offset)
    same = m.same(tail, 2)
    assert np.array_equal(m.state_hashes(np.flatnonzero(same) + 2), row_state.row_hashes(tail.filter(same)))


def test_values_compared_as_they_are_hashed():
    mirror = pa.table({"f": [0.0, 1.5, float("nan"), None], "_row": [1, 2, 3, 4]})
    run = pa.record_batch({"f": [-0.0, 1.5, float("nan"), None], "_row": [1, 2, 3, 4]})
    # -0.0 == 0.0 as numbers, not as hashed; NaN != NaN as numbers, but is hashed alike
    assert _aligned(mirror).same(run, 0).tolist() == [False, True, True, True]


def test_same_bytes_is_sure_or_says_maybe():
    assert aligned._same_bytes(pa.array(["ab", None, "c"]).slice(1), pa.array([None, "c"]))
    assert not aligned._same_bytes(pa.array(["ab", "c"]), pa.array(["a", "bc"]))     # same bytes, other values
    assert not aligned._same_bytes(pa.array([None, "c"]), pa.array(["c", None]))
    assert not aligned._same_bytes(pa.array(["a"]), pa.array(["b"]))
    assert not aligned._same_bytes(pa.array([1]), pa.array([1]))                     # not a string: by row
