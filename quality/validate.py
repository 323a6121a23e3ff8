"""Validate conformed rows with Great Expectations and split them: accepted | quarantined.

Nothing is dropped: every row leaves as accepted or quarantined (with the expectations it
failed, the offending values and the raw silo row), and the counts must reconcile.
"""
from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from exchange import staging
from exchange.errors import ReconciliationError
from quality.suites import build_suite, suite_columns, unique_fields
from schemas.conform import ROW, UNPARSED
from schemas.types import CertificateType

QUARANTINE_SCHEMA = pa.schema([
    (ROW, pa.int64()), ("reasons", pa.list_(pa.string())),
    ("values", pa.string()), ("raw", pa.string())])
RESULT_FORMAT = {"result_format": "COMPLETE", "include_unexpected_rows": False,
                 "return_unexpected_index_query": False, "partial_unexpected_count": 0}


@dataclass(frozen=True)
class Outcome:
    extracted: int
    accepted: int
    quarantined: int
    reasons: dict[str, int]            # expectation label -> failing rows
    accepted_path: Path
    quarantine_path: Path
    results_path: Path


def label(config) -> str:
    kw = config.kwargs
    cols = [kw[k] for k in ("column", "column_A", "column_B") if k in kw]
    return f"{config.type}({','.join(c.removeprefix(UNPARSED) for c in cols)})"


class _Gx:
    """One ephemeral GX context per task, analytics and progress bars off."""

    def __init__(self):
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import great_expectations as gx
        from great_expectations.data_context.types.base import (
            DataContextConfig, InMemoryStoreBackendDefaults, ProgressBarsConfig)

        from great_expectations.execution_engine import pandas_execution_engine

        # GX fingerprints every in-memory frame by hashing it whole (0.9 s per 200k rows);
        # our batches are identified by their run, so the fingerprint is turned off.
        pandas_execution_engine.HASH_THRESHOLD = 0
        cfg = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(),
                                analytics_enabled=False,
                                progress_bars=ProgressBarsConfig(globally=False))
        self.context = gx.get_context(project_config=cfg, mode="ephemeral")
        asset = self.context.data_sources.add_pandas("exchange").add_dataframe_asset("rows")
        self.batch_definition = asset.add_batch_definition_whole_dataframe("whole")

    def validate(self, df, suite):
        batch = self.batch_definition.get_batch(batch_parameters={"dataframe": df})
        return batch.validate(suite, result_format=RESULT_FORMAT)


def _to_pandas(batch: pa.RecordBatch | pa.Table):
    return batch.to_pandas(date_as_object=False, types_mapper=None)


def _duplicates(path: Path, fields: list[str], gx: _Gx) -> dict[int, list[str]]:
    """Uniqueness within the whole version: one GX call over the key columns only."""
    import great_expectations as gx_mod

    if not fields:
        return {}
    table = pq.read_table(path, columns=[ROW, *fields])
    suite = gx_mod.ExpectationSuite(name="unique_within_version")
    for f in fields:
        suite.add_expectation(gx_mod.expectations.ExpectColumnValuesToBeUnique(column=f))
    result = gx.validate(_to_pandas(table), suite)
    rows = table.column(ROW).to_numpy()
    failed: dict[int, list[str]] = defaultdict(list)
    for r in result.results:
        for i in r.result.get("unexpected_index_list") or []:
            failed[int(rows[i])].append(label(r.expectation_config))
    return failed


def validate(conformed: Path, extracted: Path, ctype: CertificateType, out_dir: Path,
             today: date, batch_rows: int = 250_000) -> Outcome:
    gx = _Gx()
    suite = build_suite(ctype, today)
    columns = suite_columns(suite)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {k: out_dir / f"{k}.parquet" for k in ("accepted", "quarantine")}
    tmp = {k: p.with_suffix(".parquet.tmp") for k, p in paths.items()}
    dup = _duplicates(conformed, unique_fields(ctype), gx)
    counts: Counter[str] = Counter()
    summary: dict[str, dict] = {}
    n_in = n_ok = n_bad = 0
    conf_file, raw_file = pq.ParquetFile(conformed), pq.ParquetFile(extracted)
    ok_writer = staging.writer(tmp["accepted"], conf_file.schema_arrow)
    bad_writer = staging.writer(tmp["quarantine"], QUARANTINE_SCHEMA)
    try:
        for batch, raw in zip(conf_file.iter_batches(batch_rows), raw_file.iter_batches(batch_rows)):
            frame = _to_pandas(batch.select(columns))
            reasons = _batch_reasons(batch, gx.validate(frame, suite), dup, summary)
            bad = np.zeros(batch.num_rows, dtype=bool)
            bad[list(reasons)] = True
            mask = pa.array(bad)
            ok_writer.write_batch(batch.filter(pc.invert(mask)))
            bad_writer.write_table(_quarantine_rows(batch, raw, reasons))
            for rs in reasons.values():
                counts.update(set(rs))
            n_in += batch.num_rows
            n_bad += int(bad.sum())
            n_ok += batch.num_rows - int(bad.sum())
    finally:
        ok_writer.close()
        bad_writer.close()
    if n_in != raw_file.metadata.num_rows or n_in != n_ok + n_bad:
        for t in tmp.values():
            t.unlink(missing_ok=True)
        raise ReconciliationError(
            f"extracted {raw_file.metadata.num_rows} rows but accepted {n_ok} + quarantined "
            f"{n_bad}: rows were lost between stages; nothing will be published")
    for k in paths:
        os.replace(tmp[k], paths[k])
    results = out_dir / "validation.json"
    results.write_text(json.dumps({"suite": suite.name, "rows": n_in, "expectations": summary},
                                  ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    return Outcome(n_in, n_ok, n_bad, dict(counts.most_common()), paths["accepted"],
                   paths["quarantine"], results)


def _batch_reasons(batch, result, dup, summary) -> dict[int, list[str]]:
    reasons: dict[int, list[str]] = defaultdict(list)
    for r in result.results:
        name = label(r.expectation_config)
        idx = r.result.get("unexpected_index_list") or []
        s = summary.setdefault(name, {"kwargs": r.expectation_config.kwargs, "unexpected": 0})
        s["unexpected"] += len(idx)
        if r.exception_info and r.exception_info.get("raised_exception"):
            raise RuntimeError(f"expectation {name} could not run: "
                               f"{r.exception_info.get('exception_message')}")
        for i in idx:
            reasons[int(i)].append(name)
    if dup:
        rows = batch.column(ROW).to_numpy()
        for i in np.flatnonzero(np.isin(rows, np.fromiter(dup, dtype=np.int64))):
            reasons[int(i)].extend(dup[int(rows[i])])
    return reasons


def _quarantine_rows(batch, raw, reasons: dict[int, list[str]]) -> pa.Table:
    if not reasons:
        return QUARANTINE_SCHEMA.empty_table()
    idx = sorted(reasons)
    conf = batch.take(pa.array(idx)).to_pylist()
    raws = raw.take(pa.array(idx)).to_pylist()
    values = []
    for i, row in zip(idx, conf):
        cols = [c for r in reasons[i] for c in r.split("(", 1)[1].rstrip(")").split(",")]
        # dates: the silo's own text says more than the (null) parsed value
        picked = {c: row.get(f"{UNPARSED}{c}") or row.get(c) for c in dict.fromkeys(cols)}
        values.append(json.dumps(picked, ensure_ascii=False, default=str))
    return pa.table({ROW: [r[ROW] for r in conf], "reasons": [reasons[i] for i in idx],
                     "values": values, "raw": [json.dumps(r, ensure_ascii=False) for r in raws]},
                    schema=QUARANTINE_SCHEMA)
