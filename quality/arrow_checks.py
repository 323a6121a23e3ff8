"""The suite's row-level expectations evaluated with pyarrow.compute, batch by batch.

Each known map metric (GX's name for the row-wise question an expectation asks) has an Arrow
function giving a row's "unexpected" flag. Counts and the first unexpected values are tallied
over the whole version, then handed to the expectation's own GX `_validate`, so the result
objects (success under `mostly`, percentages, partial lists and counts) are GX's. Anything not
listed here is validated by GX itself (quality/validate.py).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.identifiers import ric_valid, uscc_valid
from schemas.normalize import is_blank

PARTIAL = 20          # GX's default partial_unexpected_count
SAMPLE = 200          # GX's MAX_RESULT_RECORDS: values its partial_unexpected_counts are over
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": PARTIAL,
                 "include_unexpected_rows": False, "return_unexpected_index_query": False}


class Unsupported(Exception):
    """This expectation (or its arguments, or its column's type) is left to GX."""


def _strings(a):
    if not (pa.types.is_string(a.type) or pa.types.is_large_string(a.type)):
        raise Unsupported(f"{a.type} is not text")
    return a


def _numbers(a):
    if not (pa.types.is_integer(a.type) or pa.types.is_floating(a.type)):
        raise Unsupported(f"{a.type} is not numeric")
    return a


def _regex(a, regex: str):
    """GX's own test (pandas `astype(str).str.contains`), asked once per distinct value; an
    empty text leads, so a broken pattern fails even on an empty batch."""
    distinct = pc.unique(_strings(a)).drop_null()
    asked = pa.concat_arrays([pa.array([""], a.type), distinct.cast(a.type)])
    found = asked.to_pandas().astype(str).str.contains(regex).to_numpy(dtype=bool, na_value=False)
    return pc.is_in(a, value_set=distinct.filter(pa.array(found[1:])))


def _between(x, kw, lo_key="min_value", hi_key="max_value"):
    lo, hi = kw.get(lo_key), kw.get(hi_key)
    if lo is None and hi is None:
        raise Unsupported("no bounds")
    if any(isinstance(v, (dict, str)) for v in (lo, hi)):
        raise Unsupported("bounds that are not numbers")
    ok = pa.scalar(True)
    if lo is not None:
        ok = pc.and_(ok, (pc.greater if kw.get("strict_min") else pc.greater_equal)(x, lo))
    if hi is not None:
        ok = pc.and_(ok, (pc.less if kw.get("strict_max") else pc.less_equal)(x, hi))
    return ok


def _in_set(a, values):
    if values is None or isinstance(values, dict):
        raise Unsupported("value_set is not a list")
    if not (pa.types.is_string(a.type) or pa.types.is_integer(a.type)):
        raise Unsupported(f"in_set on {a.type}")
    try:
        return pc.is_in(a, value_set=pa.array(list(values), a.type))
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        raise Unsupported(str(exc)) from None


def _not_in_future(a, kw):
    if not pa.types.is_date(a.type):
        raise Unsupported(f"{a.type} is not a date")
    today = kw.get("today")
    if not isinstance(today, str):
        raise Unsupported("today is not bound")
    return pc.less_equal(a, pa.scalar(date.fromisoformat(today[:10]), a.type))


def _uscc(a, kw):
    return uscc_valid(_strings(a))


def _ric(a, kw):
    return ric_valid(_strings(a))


def _not_blank(a, kw):
    """Not blank as schemas.normalize.is_blank defines it (whitespace, null markers, no letter)."""
    return pc.invert(is_blank(_strings(a)))


@dataclass(frozen=True)
class Condition:
    ok: Callable                 # (arrow array, kwargs) -> "expected" flags over the domain
    keep_nulls: bool = False     # nonnull/null look at every row; the others skip missing values


COLUMN = {   # GX map metric -> how a value meets it
    "column_values.nonnull": Condition(lambda a, kw: pc.invert(_nulls(a)), keep_nulls=True),
    "column_values.null": Condition(lambda a, kw: _nulls(a), keep_nulls=True),
    "column_values.in_set": Condition(lambda a, kw: _in_set(a, kw.get("value_set"))),
    "column_values.not_in_set": Condition(lambda a, kw: pc.invert(_in_set(a, kw.get("value_set")))),
    "column_values.match_regex": Condition(lambda a, kw: _regex(a, kw["regex"])),
    "column_values.not_match_regex": Condition(lambda a, kw: pc.invert(_regex(a, kw["regex"]))),
    "column_values.value_length.equals": Condition(
        lambda a, kw: pc.equal(pc.utf8_length(_strings(a)), int(kw["value"]))),
    "column_values.value_length.between": Condition(
        lambda a, kw: _between(pc.utf8_length(_strings(a)), kw)),
    "column_values.between": Condition(lambda a, kw: _between(_numbers(a), kw)),
    "column_values.valid_uscc": Condition(_uscc),
    "column_values.valid_ric": Condition(_ric),
    "column_values.not_blank_normalised": Condition(_not_blank),
    "column_values.not_in_future": Condition(_not_in_future),
}
PAIR = {"column_pair_values.a_greater_than_b"}
UNIQUE = "column_values.unique"      # over the whole version (quality/validate.py)
IGNORE_ROW_IF = {"both_values_are_missing", "either_value_is_missing", "neither"}


def _nulls(a) -> pa.Array:
    return pc.is_null(a, nan_is_null=True) if pa.types.is_floating(a.type) else pc.is_null(a)


@dataclass
class Check:
    """One fast expectation: its GX object (parameters bound) and its tally over the version."""
    expectation: object
    label: str
    kwargs: dict
    columns: tuple[str, ...]
    rows: int = 0
    considered: int = 0
    unexpected: int = 0
    values: list = field(default_factory=list)
    index: list = field(default_factory=list)
    at: list = field(default_factory=list)      # positions of the first SAMPLE unexpected rows

    @property
    def metric(self) -> str:
        return self.expectation.map_metric

    def unexpected_mask(self, table) -> tuple[np.ndarray, pa.Array]:
        """(row is unexpected, row is in the domain) for one batch (a Table or RecordBatch)."""
        if self.metric in PAIR:
            return self._pair(table)
        a = table.column(self.columns[0])
        cond = COLUMN[self.metric]
        if isinstance(a, pa.ChunkedArray):
            a = a.combine_chunks()
        domain = pa.array(np.ones(len(a), bool)) if cond.keep_nulls else pc.invert(_nulls(a))
        ok = cond.ok(a, self.kwargs)
        bad = pc.and_(domain, pc.invert(pc.fill_null(ok, True)))
        return bad.to_numpy(zero_copy_only=False), domain

    def _pair(self, table):
        kw = self.kwargs
        if kw.get("ignore_row_if", "both_values_are_missing") not in IGNORE_ROW_IF:
            raise Unsupported("ignore_row_if")
        a, b = (table.column(c) for c in self.columns)
        a, b = [x.combine_chunks() if isinstance(x, pa.ChunkedArray) else x for x in (a, b)]
        na, nb = _nulls(a), _nulls(b)
        ignore = {"both_values_are_missing": pc.and_(na, nb),
                  "either_value_is_missing": pc.or_(na, nb),
                  "neither": pa.array(np.zeros(len(a), bool))}[kw.get("ignore_row_if", "both_values_are_missing")]
        domain = pc.invert(ignore)
        if a.type != b.type:
            raise Unsupported("columns of different types")
        ok = (pc.greater_equal if kw.get("or_equal") else pc.greater)(a, b)
        bad = pc.and_(domain, pc.invert(pc.fill_null(ok, False)))
        return bad.to_numpy(zero_copy_only=False), domain

    def tally(self, table, bad: np.ndarray, domain: pa.Array, offset: int) -> None:
        """Add one batch's counts; keep the first unexpected values and indexes (as GX gives
        them from a pandas frame: dates as Timestamps, pairs as tuples)."""
        n_bad = int(bad.sum())
        self.rows += len(bad)
        self.considered += int(pc.sum(domain).as_py() or 0)
        self.unexpected += n_bad
        room = SAMPLE - len(self.values)
        if n_bad and room > 0:
            first = np.flatnonzero(bad)[:room]
            self.index.extend(int(i) + offset for i in first[:PARTIAL - len(self.index)])
            self.at.extend(int(i) + offset for i in first)
            self.values.extend(self.values_at(table, first))

    def values_at(self, table, rows) -> list:
        """The checked values of these rows (positions in `table`), as GX gives them from a
        pandas frame: dates as Timestamps, pairs as tuples."""
        if not self.columns or not len(rows):
            return []
        cols = [table.column(c).take(pa.array(rows, pa.int64())) for c in self.columns]
        as_pandas = [pa.chunked_array([c] if isinstance(c, pa.Array) else c.chunks, c.type)
                     .to_pandas(date_as_object=False) for c in cols]
        if self.metric in PAIR:
            return list(zip(as_pandas[0].values, as_pandas[1].values))
        return list(as_pandas[0])

    def tallied(self) -> dict:
        """The tally as JSON (one partition's, merged by `merge`)."""
        return {"rows": self.rows, "considered": self.considered, "unexpected": self.unexpected,
                "at": self.at}

    def merge(self, tally: dict, offset: int, table) -> None:
        """Add one partition's tally (`tallied`), its rows starting at `offset` of `table`, the
        whole run's rows: counts summed, first values and indexes kept in row order."""
        self.rows += tally["rows"]
        self.considered += tally["considered"]
        self.unexpected += tally["unexpected"]
        at = [p + offset for p in tally["at"][:max(SAMPLE - len(self.at), 0)]]
        self.at.extend(at)
        self.index.extend(at[:max(PARTIAL - len(self.index), 0)])
        self.values.extend(self.values_at(table, at))

    def add(self, rows: int, considered: int, unexpected: int, values, index) -> None:
        """Add counts GX found itself (a fallback's batch) or a whole-version tally."""
        self.rows += rows
        self.considered += considered
        self.unexpected += unexpected
        self.values.extend(list(values or [])[:max(SAMPLE - len(self.values), 0)])
        self.index.extend(list(index or [])[:max(PARTIAL - len(self.index), 0)])
        self.at.extend(int(i) for i in list(index or [])[:max(SAMPLE - len(self.at), 0)])

    def result(self):
        """The GX ExpectationValidationResult, built by the expectation's own `_validate`."""
        m = self.metric
        metrics = {"table.row_count": self.rows,
                   "column_values.nonnull.unexpected_count": self.rows - self.considered,
                   f"{m}.unexpected_count": self.unexpected,
                   f"{m}.unexpected_values": self.values,
                   f"{m}.unexpected_index_list": self.index[:PARTIAL],
                   f"{m}.filtered_row_count": self.considered}
        raw = self.expectation._validate(metrics=metrics,
                                         runtime_configuration={"result_format": RESULT_FORMAT})
        return self.expectation._build_evr(raw)


def columns_of(expectation) -> tuple[str, ...]:
    kw = expectation.configuration.kwargs
    if "column_A" in kw:
        return kw["column_A"], kw["column_B"]
    return (kw["column"],) if "column" in kw else ()


def fast_check(expectation, label: str, schema: pa.Schema) -> Check:
    """A Check for this (parameter-bound) expectation, or Unsupported: GX runs it."""
    kw = dict(expectation.configuration.kwargs)
    metric = getattr(expectation, "map_metric", None)
    if metric not in COLUMN and metric not in PAIR and metric != UNIQUE:
        raise Unsupported(f"no Arrow form for {expectation.expectation_type}")
    if kw.get("row_condition"):
        raise Unsupported("row_condition")
    extra = set(kw) - {"column", "column_A", "column_B", "mostly", "value_set", "regex", "value",
                       "min_value", "max_value", "strict_min", "strict_max", "today",
                       "or_equal", "ignore_row_if", "result_format", "meta", "notes"}
    if extra:
        raise Unsupported(f"arguments {sorted(extra)}")
    cols = columns_of(expectation)
    if not cols or any(c not in schema.names for c in cols):
        raise Unsupported("columns missing: GX reports it")
    check = Check(expectation, label, kw, cols)
    probe = pa.Table.from_batches([], schema).select(list(cols))
    if metric in COLUMN or metric in PAIR:
        try:
            check.unexpected_mask(probe)      # type and argument errors surface now ...
        except Unsupported:
            raise
        except Exception as exc:              # ... and GX reports them in its own words
            raise Unsupported(f"{type(exc).__name__}: {exc}") from None
    return check


def duplicated(values: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """GX's `column_values.unique` over the whole version: every copy of a repeated non-null
    value is unexpected. Returns (unexpected, domain)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    counts = pc.value_counts(values.drop_null())
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    domain = pc.invert(_nulls(values))
    bad = pc.and_(domain, pc.fill_null(pc.is_in(values, value_set=repeated), False))
    return bad.to_numpy(zero_copy_only=False), domain
