"""Elementwise normalisations computed once per distinct value, remembered across batches.

Silo columns repeat themselves: a 1M-row silo holds about 50,000 distinct dates per date
column, 600 issuer codes, 5 statuses. `Distinct(fn)` maps a string array through an
elementwise `fn` by its distinct values (pc.dictionary_encode, fn over the values not seen
before, then take by the indices) and keeps what it computed for the next batches of the
same run. A batch whose values are nearly all new and distinct takes the direct path,
fn(arr), and so does every later call: there is nothing to share. Either way the result is
fn(arr): nulls are values like any other (fn sees them once), so what fn makes of null stays.

`fn` returns an Arrow array or a NamedTuple of arrays, one element per input element.
Safe to share between the threads of one stage (base/parallel.py).
"""
from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.normalize import as_string_array


def _parts(result) -> list[pa.Array]:
    return [result] if isinstance(result, pa.Array) else list(result)


def _like(result, parts: list[pa.Array]):
    return parts[0] if isinstance(result, pa.Array) else type(result)._make(parts)


class Distinct:
    """fn over the distinct values of each array; see the module's docstring.

    direct_above: values not seen before per row above which a batch (of at least
    `min_rows` rows) counts as all-distinct: the direct path is used from then on.
    limit: most values remembered (memory stays bounded however large the silo).
    """

    def __init__(self, fn: Callable, direct_above: float = 0.8, min_rows: int = 4096,
                 limit: int = 1 << 18):
        self.fn, self.direct_above, self.min_rows, self.limit = fn, direct_above, min_rows, limit
        self.direct = False
        self._keys: pa.Array | None = None          # distinct inputs seen so far
        self._values: list[pa.Array] = []           # fn's result parts for them
        self._lock = threading.Lock()
        self._null = None                            # fn's result for one null

    def __call__(self, arr):
        return self.many([arr])[0]

    def many(self, arrays: list) -> list:
        """[self(a) for a in arrays], the arrays' values encoded and looked up together (one
        pass over the values remembered instead of one per array)."""
        arrays = [as_string_array(a) for a in arrays]
        if self.direct:
            return [self.fn(a) for a in arrays]
        out: list = [None] * len(arrays)
        some = []                                    # the arrays with a value
        for i, a in enumerate(arrays):
            if len(a) == 0:
                out[i] = self.fn(a)
            elif a.null_count == len(a):             # an unmapped field: fn(null), repeated
                out[i] = self._nulls(len(a))
            else:
                some.append(i)
        if not some:
            return out
        found = self._lookup(pa.concat_arrays([arrays[i] for i in some]) if len(some) > 1 else arrays[some[0]])
        if found is None:                            # nearly every value new and distinct
            return [self.fn(a) if i in some else out[i] for i, a in enumerate(arrays)]
        template, parts, known = found
        at = 0
        for i in some:          # a take each: compact arrays, as an array looked up alone gets
            idx = pa.array(known[at:at + len(arrays[i])])
            out[i] = _like(template, [p.take(idx) for p in parts])
            at += len(arrays[i])
        return out

    def _nulls(self, n: int):
        if self._null is None:
            self._null = self.fn(pa.nulls(1, pa.string()))
        return _like(self._null, [p.take(np.zeros(n, np.int32)) for p in _parts(self._null)])

    def _lookup(self, arr):
        """(fn's result for one array, the parts remembered, each value's position in them),
        or None when the direct path is taken from now on."""
        enc = pc.dictionary_encode(arr, null_encoding="encode")   # null is a value too
        dic, rows = enc.dictionary, enc.indices
        with self._lock:
            keys, values = self._keys, self._values
        known = np.full(len(dic), -1, np.int64)     # position of each value among keys
        if keys is not None:   # hash the batch's values, probe the keys: cheaper than the reverse
            at = pc.fill_null(pc.index_in(keys, value_set=dic, skip_nulls=False), -1).to_numpy()
            hit = at >= 0
            known[at[hit]] = np.flatnonzero(hit)
        fresh = known < 0
        if len(arr) >= self.min_rows and fresh.sum() > self.direct_above * len(arr):
            self.direct = True
            return None
        new = dic.filter(pa.array(fresh))
        template = self.fn(new)
        seen = 0 if keys is None else len(keys)
        known[fresh] = seen + np.arange(len(new))
        if keys is None:
            parts = _parts(template)
        elif len(new):
            parts = [pa.concat_arrays([v, p]) for v, p in zip(values, _parts(template))]
        else:
            parts = values                           # every value known: nothing to copy
        self._learn(keys, new, parts)
        return template, parts, known[rows.to_numpy()]

    def _learn(self, keys: pa.Array | None, new: pa.Array, parts: list[pa.Array]) -> None:
        """Remember `new` (computed against the snapshot `keys`) unless the limit is reached."""
        if len(new) == 0:
            return
        with self._lock:
            seen = 0 if keys is None else len(keys)
            if self._keys is keys:                   # nobody learnt since the snapshot
                all_keys = new if keys is None else pa.concat_arrays([keys, new])
                if len(all_keys) <= self.limit:
                    self._keys, self._values = all_keys, parts
                return
            # another thread learnt meanwhile: add only what it did not
            extra = self._keys.slice(seen)
            mine = pc.invert(pc.is_in(new, value_set=extra, skip_nulls=False))
            if len(self._keys) + pc.sum(mine).as_py() <= self.limit:
                self._keys = pa.concat_arrays([self._keys, new.filter(mine)])
                self._values = [pa.concat_arrays([v, p.slice(seen).filter(mine)])
                                for v, p in zip(self._values, parts)]
