"""Validate conformed rows with Great Expectations and split them: accepted | quarantined.

Nothing is dropped: every row leaves as accepted or quarantined (with the expectations it
failed, the offending values and the raw silo row), and the counts must reconcile.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from base import memory, staging
from base.errors import ConfigError, ReconciliationError
from quality import arrow_checks as ac
from quality import suites
from quality.gx_context import Gx
from quality.reasons import label_lists, list_counts, same_lists
from quality.suites import suite_columns
from schemas.conform import ROW, UNPARSED
from schemas.types import CertificateType


def quarantine_schema(raw_schema: pa.Schema) -> pa.Schema:
    """One row per failing silo row: `raw` keeps the silo's own row as it was extracted."""
    return pa.schema([(ROW, pa.int64()), ("key", pa.string()), ("row_hash", pa.string()),
                      ("reasons", pa.list_(pa.string())), ("values", pa.string()),
                      ("raw", pa.struct(list(raw_schema)))])


@dataclass(frozen=True)
class Outcome:
    extracted: int
    accepted: int
    quarantined: int
    reasons: dict[str, int]            # expectation label -> failing rows
    accepted_path: Path
    quarantine_path: Path
    results_path: Path
    docs_path: Path | None = None      # the run's GX Data Docs (index.html)
    result: object = None              # the GX ExpectationSuiteValidationResult of the version
    # quarantined rows whose row-level failures cannot change with time: (_row, those failures)
    row_reasons: pa.Table | None = None
    kept: int = 0                      # rows not checked again: their row-level failures were `known`
    # quarantined rows left out of the quarantine file (`quiet`): their _row
    quiet: pa.Array = field(default_factory=lambda: pa.array([], pa.int64()))
    # quarantined rows one of whose row-level failures is dated: (_row, those failures)
    rechecked: pa.Table | None = None


def label(config) -> str:
    kw = config.kwargs
    cols = [kw[k] for k in ("column", "column_A", "column_B") if k in kw]
    cols += list(kw.get("column_list") or [])
    return f"{config.type}({','.join(c.removeprefix(UNPARSED) for c in cols)})"


def _to_pandas(batch: pa.RecordBatch | pa.Table, offset: int = 0):
    frame = batch.to_pandas(date_as_object=False, types_mapper=None)
    if offset:
        frame.index = frame.index + offset      # GX's indexes are then positions in the version
    return frame


@dataclass
class _Plan:
    """The suite's expectations in order, each as an Arrow check or left to GX."""
    fast: dict[int, ac.Check]                   # suite position -> Arrow check
    gx_rows: dict[int, ac.Check]                # row-level, GX per batch, tallied like the fast ones
    gx_version: list[int]                       # GX once over the whole version's columns
    expectations: list                          # parameter-bound GX expectations
    labels: list[str]


def _plan(suite, params: dict, schema: pa.Schema) -> _Plan:
    bound, fast, gx_rows, gx_version, labels = [], {}, {}, [], []
    for i, exp in enumerate(suite.expectations):
        config = exp.configuration
        config.process_suite_parameters(params)
        exp = config.to_domain_obj()
        bound.append(exp)
        labels.append(label(config))
        try:
            fast[i] = ac.fast_check(exp, labels[i], schema)
            continue
        except ac.Unsupported:
            pass
        if getattr(exp, "map_metric", None) and config.type not in suites.VERSION_WIDE:
            gx_rows[i] = ac.Check(exp, labels[i], dict(config.kwargs), ac.columns_of(exp))
        else:
            gx_version.append(i)
    return _Plan(fast, gx_rows, gx_version, bound, labels)


def _gx_suite(plan: _Plan, picked: list[int], name: str):
    import great_expectations as gx  # lazy: GX takes seconds to import
    return gx.ExpectationSuite(name=name, expectations=[
        plan.expectations[i].configuration.get_raw_configuration().to_domain_obj() for i in picked])


def _version_wide(table: pa.Table, plan: _Plan, suite_name: str, gx: Gx, params: dict):
    """Checks that need the whole version at once (uniqueness): the key columns only.
    Returns {suite position: GX result} and failing positions -> labels."""
    failed: dict[int, list[str]] = defaultdict(list)
    results: dict[int, object] = {}
    unique = [i for i, c in plan.fast.items() if c.metric == ac.UNIQUE]
    for i in unique:
        check = plan.fast[i]
        column = table.column(check.columns[0])
        bad, domain = ac.duplicated(column)
        check.tally(pa.table({check.columns[0]: column}), bad, domain, 0)
        for pos in np.flatnonzero(bad):
            failed[int(pos)].append(check.label)
    if plan.gx_version:
        gx_suite = _gx_suite(plan, plan.gx_version, suite_name + ".version")
        cols = [c for c in suite_columns(gx_suite) if c in table.schema.names]
        result = gx.validate(_to_pandas(table.select(cols or [ROW])), gx_suite, params)
        for i, r in zip(plan.gx_version, in_suite_order(result, gx_suite)):
            _raise_if_broken(r)
            for pos in r.result.get("unexpected_index_list") or []:
                failed[int(pos)].append(plan.labels[i])
            results[i] = r
    return results, failed


class _RowChecks:
    """The suite's row-level expectations (every one but the version-wide), batch by batch:
    each batch's failing rows with their labels, tallied into the plan's checks."""

    def __init__(self, plan: _Plan, suite_name: str, schema: pa.Schema, gx: Gx, params: dict):
        self.plan, self.gx, self.params = plan, gx, params
        self.suite = _gx_suite(plan, list(plan.gx_rows), suite_name) if plan.gx_rows else None
        self.columns = [c for c in suite_columns(self.suite) if c in schema.names] if self.suite else []

    def reasons(self, batch, offset: int) -> dict[int, list[str]]:
        reasons: dict[int, list[str]] = defaultdict(list)
        for check in (c for c in self.plan.fast.values() if c.metric != ac.UNIQUE):
            bad, domain = check.unexpected_mask(batch)
            check.tally(batch, bad, domain, offset)
            for p in np.flatnonzero(bad).tolist():
                reasons[p].append(check.label)
        if self.suite is not None:
            _gx_rows(self.gx, self.suite, self.plan, batch.select(self.columns), offset, self.params, reasons)
        return reasons


# rows checked at a time: memory holds about one batch of the run (~60 MB of conformed rows)
BATCH_ROWS = 100_000
FINDINGS = pa.schema([("pos", pa.int64()), ("reasons", pa.list_(pa.string()))])


def check_partition(conformed: Path, ctype: CertificateType, out: Path, today: date,
                    batch_rows: int = BATCH_ROWS, checks: tuple | list = ()) -> dict:
    """One partition of a split run: the row-level expectations only, its findings (each failing
    row's position and labels; each check's tally) written to `out` (Arrow IPC) for `validate`
    to merge, with the version-wide ones, over the whole run. Returns its counts."""
    suite = suites.to_gx(suites.read(ctype.name, checks))
    params = {"today": today.isoformat()}
    table, release = staging.map_table(conformed)
    plan = _plan(suite, params, table.schema)
    rows = _RowChecks(plan, suite.name, table.schema, Gx(None), params)
    pos: list[int] = []
    labels: list[list[str]] = []
    for start in range(0, table.num_rows, batch_rows):
        found = rows.reasons(table.slice(start, batch_rows), start)
        for p in sorted(found):
            pos.append(p + start)
            labels.append(found[p])
        release()
    tallies = {str(i): c.tallied() for i, c in {**plan.fast, **plan.gx_rows}.items() if c.metric != ac.UNIQUE}
    meta = {"rows": table.num_rows, "today": today.isoformat(), "suite": suite.name, "tallies": tallies}
    tmp = out.with_name(out.name + ".tmp")
    with staging.transient_writer(tmp, FINDINGS.with_metadata({"findings": json.dumps(meta)})) as w:
        w.write_table(pa.table({"pos": pos, "reasons": labels}, schema=FINDINGS))
    os.replace(tmp, out)
    return {"rows": table.num_rows, "flagged": len(pos)}


def _merge_findings(paths: list[Path], plan: _Plan, table: pa.Table) -> tuple[np.ndarray, list]:
    """The partitions' findings over the whole run (in partition order): positions of the
    failing rows and their labels; each check's tallies added to the plan's."""
    pos, labels, offset = [], [], 0
    for path in paths:
        found = staging.read_table(path)
        meta = json.loads(found.schema.metadata[b"findings"])
        for i, tally in meta["tallies"].items():
            check = plan.fast.get(int(i)) or plan.gx_rows[int(i)]
            check.merge(tally, offset, table)
        pos.append(pc.add(found.column("pos"), offset).to_numpy())
        labels += found.column("reasons").to_pylist()
        offset += meta["rows"]
    if offset != table.num_rows:
        raise ReconciliationError(f"the partitions hold {offset} rows but the run {table.num_rows}: "
                                  "rows were lost between stages; nothing will be published")
    return (np.concatenate(pos) if pos else np.zeros(0, np.int64)), labels


def validate(conformed: Path, extracted: Path, ctype: CertificateType, out_dir: Path,
             today: date, batch_rows: int = BATCH_ROWS, checks: tuple | list = (),
             docs: bool = True, findings: list[Path] | None = None,
             known: pa.Array | None = None, quiet: pa.Array | None = None,
             checked: Callable[[], Path] | None = None) -> Outcome:
    """Run the type's suite file (plus a source's own checks) and split the rows.
    Expectations with an Arrow form run in pyarrow.compute; the rest run in GX; either way
    the results are GX result objects, one per expectation, over the whole version.
    `findings`: a split run's partitions' row-level findings (check_partition), in order, for
    the whole run's rows: only the version-wide expectations then run here.
    `known`: per conformed row, its row-level failures as found before (unchanged since, none
    of them dated: exchange/row_state.py), or null: such a row is not checked again, its
    failures are taken as they are (the version-wide expectations still run over it).
    `quiet`: per conformed row, its row-level failures when last quarantined, if it need not be
    reported again (exchange/unreported.py), or null: a row quarantined now whose row-level
    failures are those is counted but left out of the quarantine file (Outcome.quiet).
    `checked`: makes the file of the extracted rows that were conformed, in order (a delta
    run's), called only when a quarantined row's raw row is first wanted; `extracted` is then
    the whole extracted file, its schema only read."""
    docs_dir = out_dir / "data_docs"
    shutil.rmtree(docs_dir, ignore_errors=True)
    gx = Gx(docs_dir if docs else None)
    data = suites.read(ctype.name, checks)
    suite = suites.to_gx(data)
    dated = {label(e.configuration) for e in suite.expectations if suites.dated(e.configuration.kwargs)}
    params = {"today": today.isoformat()}
    # mapped, and the pages read released batch by batch: memory does not grow with the run
    conf_table, conf_release = staging.map_table(conformed)
    if checked is None:
        raw_table, raw_release = staging.map_table(extracted)
    else:
        raw_table = _Raw(checked, staging.read_schema(extracted), conf_table.num_rows)
        raw_release = raw_table.release
    plan = _plan(suite, params, conf_table.schema)
    row_checks = _RowChecks(plan, suite.name, conf_table.schema, gx, params) if findings is None else None
    found_pos, found = _merge_findings(findings, plan, conf_table) if findings is not None else (None, [])
    key_field = "licence_number" if "licence_number" in ctype.field_names else None
    out_dir.mkdir(parents=True, exist_ok=True)
    # accepted: handed to publish (staging.transient); quarantine: kept for review (Parquet)
    paths = {"accepted": staging.transient(out_dir, "accepted"), "quarantine": out_dir / "quarantine.parquet"}
    tmp = {k: p.with_name(p.name + ".tmp") for k, p in paths.items()}
    version_results, wide = _version_wide(conf_table, plan, suite.name, gx, params)
    conf_release()
    wide_pos = np.fromiter(sorted(wide), dtype=np.int64)
    settled = _settled(known, quiet, wide_pos) if row_checks is not None else None
    counts: Counter[str] = Counter()
    n_in = n_ok = n_bad = fresh = 0
    kept_rows: list[int] = []
    kept_reasons: list[list[str]] = []
    quiet_rows: list[int] = []
    dated_rows: list[int] = []
    dated_reasons: list[list[str]] = []
    bulk: list[tuple[pa.Array, pa.Array]] = []       # settled rows: (_row, their failures)
    ok_writer = staging.transient_writer(tmp["accepted"], conf_table.schema)
    q_schema = quarantine_schema(raw_table.schema)
    bad_writer = staging.writer(tmp["quarantine"], q_schema)
    writes, pending = ThreadPoolExecutor(1), []
    copies: Counter[tuple[str, str]] = Counter()      # (key, row hash) -> rows so far
    try:
        with memory.settled_heap():      # many rows' objects made: full passes skip the old ones
            for batch, raw in _aligned_batches(conf_table, raw_table, batch_rows):
                offset = n_in
                same = settled[offset:offset + batch.num_rows] if settled is not None else None
                if row_checks is not None:
                    reasons, checked = _row_reasons(row_checks, batch, known, offset, fresh, same)
                    fresh += checked
                else:
                    lo, hi = np.searchsorted(found_pos, [offset, offset + batch.num_rows])
                    reasons = defaultdict(list, {int(p) - offset: list(found[j])
                                                 for j, p in enumerate(found_pos[lo:hi].tolist(), lo)})
                lo, hi = np.searchsorted(wide_pos, [offset, offset + batch.num_rows])
                here = wide_pos[lo:hi].tolist()
                own = {pos - offset: len(reasons.get(pos - offset, ())) for pos in here}   # row-level failures
                for pos in here:              # a new list: a kept row's list may be shared
                    reasons[pos - offset] = [*reasons.get(pos - offset, ()), *wide[pos]]
                bad = np.zeros(batch.num_rows, dtype=bool)
                bad[list(reasons)] = True
                row_level = {p: reasons[p][:own[p]] if p in own else reasons[p] for p in np.flatnonzero(bad).tolist()}
                if same is not None and same.any():
                    bad |= same
                    bulk.append(_settled_rows(batch, known.slice(offset, batch.num_rows), same, counts))
                while len(pending) > 2:         # at most a batch or two waiting to be written
                    pending.pop(0).result()
                pending.append(writes.submit(ok_writer.write_table, batch.filter(pa.array(~bad))))
                hush = _quiet(quiet, offset, batch.num_rows, row_level)
                told = {p: rs for p, rs in reasons.items() if p not in hush} if hush else reasons
                quarantined = _quarantine_rows(batch, raw, told, key_field, q_schema, copies)
                pending.append(writes.submit(bad_writer.write_table, quarantined))
                conf_release()
                raw_release()
                for rs, n in Counter(map(tuple, reasons.values())).items():     # rows share their lists
                    for r in dict.fromkeys(rs):      # not a set: ties keep the same order every run
                        counts[r] += n
                n_in += batch.num_rows
                n_bad += int(bad.sum())
                timeless = [p for p, rs in row_level.items() if not dated.intersection(rs)]
                numbers = batch.column(ROW)
                kept_rows += numbers.take(pa.array(timeless, pa.int64())).to_pylist()
                kept_reasons += [row_level[p] for p in timeless]
                if len(timeless) < len(row_level):
                    others = [p for p in row_level if dated.intersection(row_level[p])]
                    dated_rows += numbers.take(pa.array(others, pa.int64())).to_pylist()
                    dated_reasons += [row_level[p] for p in others]
                quiet_rows += numbers.take(pa.array(sorted(hush), pa.int64())).to_pylist()
                n_ok += batch.num_rows - int(bad.sum())
        for f in pending:
            f.result()
        if n_in != raw_table.num_rows or n_in != n_ok + n_bad:
            raise ReconciliationError(
                f"extracted {raw_table.num_rows} rows but accepted {n_ok} + quarantined "
                f"{n_bad}: rows were lost between stages; nothing will be published")
    except BaseException:
        writes.shutdown()
        ok_writer.close()
        bad_writer.close()
        for t in tmp.values():
            t.unlink(missing_ok=True)
        raise
    writes.shutdown()
    ok_writer.close()
    bad_writer.close()
    for k in paths:
        os.replace(tmp[k], paths[k])
    result = suite_result(suite.name, [
        version_results[i] if i in version_results else (plan.fast.get(i) or plan.gx_rows[i]).result()
        for i in range(len(plan.expectations))])
    summary: dict[str, dict] = {}
    for r in result.results:
        s = summary.setdefault(label(r.expectation_config),
                               {"kwargs": r.expectation_config.kwargs, "unexpected": 0})
        s["unexpected"] += (r.result or {}).get("unexpected_count") or 0
    gx.keep(result, "version")
    results = out_dir / "validation.json"
    results.write_text(json.dumps({"suite": suite.name, "rows": n_in, "expectations": summary},
                                  ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    row_reasons = pa.table({ROW: pa.concat_arrays([pa.array(kept_rows, pa.int64()), *(r for r, _ in bulk)]),
                            "reasons": pa.concat_arrays([pa.array(kept_reasons, pa.list_(pa.string())),
                                                         *(rs for _, rs in bulk)])})
    rechecked = pa.table({ROW: pa.array(dated_rows, pa.int64()),
                          "reasons": pa.array(dated_reasons, pa.list_(pa.string()))})
    return Outcome(n_in, n_ok, n_bad, dict(counts.most_common()), paths["accepted"],
                   paths["quarantine"], results, gx.build_docs(), result, row_reasons,
                   n_in - fresh if row_checks is not None else 0,
                   pa.concat_arrays([pa.array(quiet_rows, pa.int64()), *(r for r, _ in bulk)]), rechecked)


def _settled(known: pa.Array | None, quiet: pa.Array | None, wide_pos: np.ndarray) -> np.ndarray | None:
    """Per conformed row: is its outcome last run's, so that it is taken in bulk, no Python
    object per row. Such a row was quarantined unchanged with row-level failures none of which is
    dated (`known`), is not reported again (`quiet`: no row sharing its licence number changed)
    with those failures, and fails no version-wide expectation now. None: no such row."""
    if known is None or quiet is None:
        return None
    same = pc.and_(pc.greater(pc.list_value_length(known), 0), same_lists(known, quiet))
    mask = pc.fill_null(same, False).to_numpy(zero_copy_only=False).copy()
    mask[wide_pos] = False
    return mask if mask.any() else None


def _settled_rows(batch: pa.Table, known: pa.Array, same: np.ndarray, counts: Counter) -> tuple[pa.Array, pa.Array]:
    """A batch's settled rows (`same`), their failures (`known`) counted: (_row, failures)."""
    mask = pa.array(same)
    failures = known.filter(mask)
    for rs, n in list_counts(failures):
        for r in dict.fromkeys(rs):      # not a set: ties keep the same order every run
            counts[r] += n
    rows = batch.column(ROW).filter(mask)
    return (rows.combine_chunks() if isinstance(rows, pa.ChunkedArray) else rows).cast(pa.int64()), failures


def _quiet(quiet: pa.Array | None, offset: int, n: int, row_level: dict[int, list[str]]) -> set[int]:
    """The batch's quarantined rows (`row_level`: position -> row-level failures) that fail
    what `quiet` says they failed when last quarantined: not reported again."""
    if quiet is None or not row_level:
        return set()
    q = quiet.slice(offset, n)
    if q.null_count == len(q):
        return set()
    listed = np.zeros(n, bool)
    listed[list(row_level)] = True
    at = np.flatnonzero(pc.is_valid(q).to_numpy(zero_copy_only=False) & listed)
    lists = label_lists(q.take(pa.array(at, pa.int64())))
    return {p for p, rs in zip(at.tolist(), lists) if p in row_level and rs == row_level[p]}


def _row_reasons(checks: _RowChecks, batch: pa.Table, known: pa.Array | None, offset: int,
                 fresh: int, settled: np.ndarray | None = None) -> tuple[dict[int, list[str]], int]:
    """A batch's row-level failures (position in the batch -> labels): the rows whose failures
    are `known` (from `offset` on) take them as they are, but for the `settled` ones (left out:
    taken in bulk), the others are checked (their positions among the checked rows start at
    `fresh`). Returns them and the rows checked."""
    k = known.slice(offset, batch.num_rows) if known is not None else None
    if k is None or k.null_count == len(k):
        return checks.reasons(batch, fresh), batch.num_rows
    skip = pc.is_valid(k).to_numpy(zero_copy_only=False)
    todo = np.flatnonzero(~skip)
    found = checks.reasons(batch.take(pa.array(todo, pa.int64())), fresh) if len(todo) else {}
    reasons: dict[int, list[str]] = defaultdict(list, {int(todo[p]): rs for p, rs in found.items()})
    take = skip & ~settled if settled is not None else skip
    for p, rs in zip(np.flatnonzero(take).tolist(), label_lists(k.filter(pa.array(take)))):
        if rs:
            reasons[p] = rs        # shared by the rows with the same failures: not changed
    return reasons, len(todo)


MONOTONE = {"expect_column_values_to_not_be_in_the_future"}     # passed once, passed for good
# expectations that judge each row by its own values (whatever the other rows hold)
ROW_WISE = {
    "expect_column_values_to_not_be_null", "expect_column_values_to_be_null",
    "expect_column_values_to_be_parsable_dates", "expect_column_values_to_not_be_blank_when_normalised",
    "expect_column_values_to_be_valid_uscc", "expect_column_values_to_be_valid_ric",
    "expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set",
    "expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex",
    "expect_column_value_lengths_to_equal", "expect_column_value_lengths_to_be_between",
    "expect_column_values_to_be_between", "expect_column_values_to_not_be_in_the_future",
    "expect_column_pair_values_a_to_be_greater_than_b",
}


def incremental_blocker(ctype: CertificateType, checks: tuple | list = ()) -> str | None:
    """Why a row accepted before cannot be trusted to pass again unchanged (change detection,
    exchange/row_state.py), or None: an expectation that is not judged row by row (other than
    uniqueness of licence numbers, which change detection decides over the rows it checks), or
    a check of "today" that can fail later. Read from the suite's JSON: no GX import."""
    data = suites.read(ctype.name, checks)
    for e in data["expectations"]:
        kind, kw = e["type"], e["kwargs"]
        if kind == "expect_column_values_to_be_unique" and kw.get("column") == "licence_number":
            continue
        if kind not in ROW_WISE:
            return f"{kind}({kw.get('column') or ','.join(kw.get('column_list') or [])}) is not row by row"
        if kind not in MONOTONE and suites.dated(kw):
            return f"{kind} depends on a run parameter (today's date)"
    if not any(e["type"] == "expect_column_values_to_be_unique" and e["kwargs"].get("column") == "licence_number"
               for e in data["expectations"]):
        return "licence numbers are not checked unique"
    return None


def _gx_rows(gx: Gx, row_suite, plan: _Plan, batch, offset: int, params: dict, reasons) -> None:
    """Row-level expectations with no Arrow form: GX on this batch, tallied into the version."""
    result = gx.validate(_to_pandas(batch, offset), row_suite, params)
    for i, r in zip(plan.gx_rows, in_suite_order(result, row_suite)):
        _raise_if_broken(r)
        res = r.result or {}
        n, missing = res.get("element_count") or 0, res.get("missing_count") or 0
        idx = res.get("unexpected_index_list") or []
        plan.gx_rows[i].add(n, n - missing, res.get("unexpected_count") or 0,
                            res.get("unexpected_list"), idx)
        for pos in idx:
            reasons[int(pos) - offset].append(plan.labels[i])


def in_suite_order(result, suite) -> list:
    """GX's results in the order of the suite's expectations (GX does not keep it)."""
    def key(config):
        kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
        return config.type, json.dumps(kwargs, sort_keys=True, default=str)

    by_key: dict[tuple, list] = defaultdict(list)
    for r in result.results:
        by_key[key(r.expectation_config)].append(r)
    return [by_key[key(e.configuration)].pop(0) for e in suite.expectations]


def suite_result(name: str, results: list):
    """GX's suite-level result from expectation results, with GX's own statistics."""
    from great_expectations import __version__  # lazy: GX takes seconds to import
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult
    from great_expectations.validator.validation_statistics import calc_validation_statistics

    stats = calc_validation_statistics(results)
    return ExpectationSuiteValidationResult(
        results=results, success=stats.success, suite_name=name,
        statistics={"evaluated_expectations": stats.evaluated_expectations,
                    "successful_expectations": stats.successful_expectations,
                    "unsuccessful_expectations": stats.unsuccessful_expectations,
                    "success_percent": stats.success_percent},
        meta={"great_expectations_version": __version__, "evaluated_by": "quality.arrow_checks"})


class _Raw:
    """The raw rows of the conformed ones (`num_rows`, `schema`), their file made by `make` when
    a quarantined row's raw row is first wanted: a delta run whose quarantined rows are all left
    unreported reads none of the extracted file."""

    def __init__(self, make: Callable[[], Path], schema: pa.Schema, num_rows: int):
        self._make, self.schema, self.num_rows = make, schema, num_rows
        self._table: pa.Table | None = None
        self._release: Callable[[], None] = lambda: None

    def table(self) -> pa.Table:
        if self._table is None:
            self._table, self._release = staging.map_table(self._make())
        return self._table

    def release(self) -> None:
        self._release()

    def slice(self, start: int, n: int) -> _RawSlice:
        return _RawSlice(self, start, max(0, min(n, self.num_rows - start)))


@dataclass(frozen=True)
class _RawSlice:
    raw: _Raw
    start: int
    num_rows: int

    def rows(self, take: pa.Array) -> pa.Table:
        return _rows_at(self.raw.table().slice(self.start, self.num_rows), take)


def _aligned_batches(conf: pa.Table, raw: pa.Table | _Raw, batch_rows: int):
    """(conformed, raw) slices of the same rows (conforming keeps rows in silo order)."""
    if conf.num_rows > raw.num_rows:
        raise ReconciliationError(
            f"conforming made more rows than the {raw.num_rows} extracted; nothing will be published")
    for start in range(0, conf.num_rows, batch_rows):
        yield conf.slice(start, batch_rows), raw.slice(start, batch_rows)


def _raise_if_broken(r) -> None:
    info = r.exception_info or {}
    # GX gives {raised_exception, exception_message} or, per failed metric, {metric id: {...}}
    infos = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    broken = next((i for i in infos if i.get("raised_exception")), None)
    if broken:
        raise ConfigError(f"expectation {label(r.expectation_config)} could not run: "
                          f"{broken.get('exception_message')}; check the suite file "
                          "quality/suites/ or the registration's [[checks]]")


def row_key(licence_number: str | None, raw: dict) -> str:
    """Identifies a quarantined row across runs: its licence number, else a hash of the silo row."""
    if licence_number:
        return licence_number
    body = json.dumps({k: v for k, v in raw.items() if k != ROW}, ensure_ascii=False,
                      sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()[:32]


_ENCODE = json.JSONEncoder(ensure_ascii=False, default=str).encode
_STRING = json.encoder.encode_basestring      # what _ENCODE writes for a str


def _json(value) -> str:
    """_ENCODE(value), the common cases without building an encoder per value."""
    kind = type(value)
    if kind is str:
        return _STRING(value)
    if kind is date:           # default=str: its ISO text, nothing to escape
        return f'"{value.isoformat()}"'
    if kind is int:
        return int.__repr__(value)
    return "null" if value is None else _ENCODE(value)


@functools.lru_cache(maxsize=1024)
def _columns_of(reason: str) -> tuple[str, ...]:
    return tuple(c for c in reason.split("(", 1)[1].rstrip(")").split(",") if c)


def row_hashes(raw: pa.Table) -> list[str]:
    """A hash of each silo row's content (every column but the row number): with its key, it
    tells the quarantined rows that share a licence number apart, and finds them again next run."""
    cols = [pc.fill_null(pc.utf8_replace_slice(_as_text(raw.column(c)), 0, 0, "="), "\x00")
            for c in raw.column_names if c != ROW]
    if not cols:
        return [""] * raw.num_rows
    joined = pc.binary_join_element_wise(*cols, "\x1f") if len(cols) > 1 else cols[0]
    return [hashlib.sha256(t.encode()).hexdigest()[:32] for t in joined.to_pylist()]


def _as_text(column) -> pa.ChunkedArray | pa.Array:
    try:
        return column.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([None if v is None else _ENCODE(v) for v in column.to_pylist()], pa.string())


def _rows_at(table: pa.Table, at: pa.Array) -> pa.Table:
    return table.filter(at) if pa.types.is_boolean(at.type) else table.take(at)


def _quarantine_rows(batch, raw, reasons: dict[int, list[str]], key_field: str | None,
                     schema: pa.Schema, copies: Counter) -> pa.Table:
    """The failing rows: reasons, the offending values (the silo's own text for dates) and
    the raw silo row (kept as Arrow, not re-encoded row by row). A row's hash gets "/2", "/3" …
    for the second, third … row of the run with the same key and content."""
    if not reasons:
        return schema.empty_table()
    idx = sorted(reasons)
    mask = np.zeros(batch.num_rows, dtype=bool)
    mask[idx] = True
    take = pa.array(mask)        # the rows in order: a filter, cheaper than a take over chunks
    if raw.num_rows != batch.num_rows:       # rows lost (reconciliation fails after): as they are
        take = pa.array(idx, pa.int64())
    named = {c for r in {r for rs in reasons.values() for r in rs} for c in _columns_of(r)}
    wanted = [c for c in batch.schema.names
              if c in named or c.removeprefix(UNPARSED) in named or c in (ROW, key_field)]
    conf = _rows_at(batch.select(wanted), take).to_pydict()
    raw_rows = (raw.rows(take) if isinstance(raw, _RawSlice) else _rows_at(raw, take)).combine_chunks()
    nulls = [None] * len(idx)
    # dates: the silo's own text says more than the (null) parsed value
    shown = {c: (conf.get(UNPARSED + c) or nulls, conf.get(c) or nulls) for c in named}
    values, columns = [], {}
    for n, i in enumerate(idx):
        rs = tuple(reasons[i])
        cols = columns.get(rs)
        if cols is None:
            cols = columns[rs] = tuple((c, _ENCODE(c) + ": ")
                                       for c in dict.fromkeys(c for r in rs for c in _columns_of(r)))
        values.append("{" + ", ".join([k + _json(shown[c][0][n] or shown[c][1][n]) for c, k in cols]) + "}")
    keys = list(conf[key_field]) if key_field else list(nulls)
    for n in (n for n, k in enumerate(keys) if not k):       # rare: hash the silo row
        keys[n] = row_key(None, raw_rows.slice(n, 1).to_pylist()[0])
    hashes = row_hashes(raw_rows)
    for n, (k, h) in enumerate(zip(keys, hashes)):
        copies[(k, h)] += 1
        if copies[(k, h)] > 1:
            hashes[n] = f"{h}/{copies[(k, h)]}"
    raw_struct = pa.StructArray.from_arrays(
        [c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in raw_rows.columns],
        fields=list(raw_rows.schema))
    return pa.table({ROW: conf[ROW], "key": keys, "row_hash": hashes, "reasons": [reasons[i] for i in idx],
                     "values": values, "raw": raw_struct}, schema=schema)
