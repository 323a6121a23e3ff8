"""Validate conformed rows with Great Expectations and split them: accepted | quarantined.

Nothing is dropped: every row leaves as accepted or quarantined (with the expectations it
failed, the offending values and the raw silo row), and the counts must reconcile.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from exchange import staging
from exchange.errors import ConfigError, ReconciliationError
from quality import suites
from quality.gx_context import Gx
from quality.suites import suite_columns
from schemas.conform import ROW, UNPARSED
from schemas.types import CertificateType

QUARANTINE_SCHEMA = pa.schema([
    (ROW, pa.int64()), ("key", pa.string()), ("reasons", pa.list_(pa.string())),
    ("values", pa.string()), ("raw", pa.string())])
_Gx = Gx   # older name


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


def label(config) -> str:
    kw = config.kwargs
    cols = [kw[k] for k in ("column", "column_A", "column_B") if k in kw]
    cols += list(kw.get("column_list") or [])
    return f"{config.type}({','.join(c.removeprefix(UNPARSED) for c in cols)})"


def _to_pandas(batch: pa.RecordBatch | pa.Table):
    return batch.to_pandas(date_as_object=False, types_mapper=None)


def _version_wide(path: Path, suite, gx: Gx, params: dict) -> dict[int, list[str]]:
    """Uniqueness within the whole version: one GX call over the key columns only."""
    if not suite.expectations:
        return {}
    table = pq.read_table(path, columns=[ROW, *suite_columns(suite)])
    result = gx.validate(_to_pandas(table), suite, params, keep_as="whole-version")
    rows = table.column(ROW).to_numpy()
    failed: dict[int, list[str]] = defaultdict(list)
    for r in result.results:
        _raise_if_broken(r)
        for i in r.result.get("unexpected_index_list") or []:
            failed[int(rows[i])].append(label(r.expectation_config))
    return failed


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
             today: date, batch_rows: int = 250_000, checks: tuple | list = (),
             docs: bool = True) -> Outcome:
    """Run the type's suite file (plus a source's own checks) and split the rows."""
    docs_dir = out_dir / "data_docs"
    shutil.rmtree(docs_dir, ignore_errors=True)
    gx = Gx(docs_dir if docs else None)
    data = suites.read(ctype.name, checks)
    suite, wide = suites.to_gx(data, version_wide=False), suites.to_gx(data, version_wide=True)
    params = {"today": today.isoformat()}
    columns = [c for c in suite_columns(suite) if c != ROW]
    key_field = "licence_number" if "licence_number" in ctype.field_names else None
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {k: out_dir / f"{k}.parquet" for k in ("accepted", "quarantine")}
    tmp = {k: p.with_suffix(".parquet.tmp") for k, p in paths.items()}
    dup = _version_wide(conformed, wide, gx, params)
    counts: Counter[str] = Counter()
    summary: dict[str, dict] = {}
    n_in = n_ok = n_bad = 0
    conf_file, raw_file = pq.ParquetFile(conformed), pq.ParquetFile(extracted)
    ok_writer = staging.writer(tmp["accepted"], conf_file.schema_arrow)
    bad_writer = staging.writer(tmp["quarantine"], QUARANTINE_SCHEMA)
    try:
        for n, (batch, raw) in enumerate(zip(conf_file.iter_batches(batch_rows),
                                             raw_file.iter_batches(batch_rows)), start=1):
            frame = _to_pandas(batch.select(columns))
            result = gx.validate(frame, suite, params, keep_as=f"batch-{n:04d}")
            reasons = _batch_reasons(batch, result, dup, summary)
            bad = np.zeros(batch.num_rows, dtype=bool)
            bad[list(reasons)] = True
            mask = pa.array(bad)
            ok_writer.write_batch(batch.filter(pc.invert(mask)))
            bad_writer.write_table(_quarantine_rows(batch, raw, reasons, key_field))
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
                   paths["quarantine"], results, gx.build_docs())


def _batch_reasons(batch, result, dup, summary) -> dict[int, list[str]]:
    reasons: dict[int, list[str]] = defaultdict(list)
    for r in result.results:
        name = label(r.expectation_config)
        idx = r.result.get("unexpected_index_list") or []
        s = summary.setdefault(name, {"kwargs": r.expectation_config.kwargs, "unexpected": 0})
        s["unexpected"] += len(idx)
        _raise_if_broken(r)
        for i in idx:
            reasons[int(i)].append(name)
    if dup:
        rows = batch.column(ROW).to_numpy()
        for i in np.flatnonzero(np.isin(rows, np.fromiter(dup, dtype=np.int64))):
            reasons[int(i)].extend(dup[int(rows[i])])
    return reasons


def _raise_if_broken(r) -> None:
    if r.exception_info and r.exception_info.get("raised_exception"):
        raise ConfigError(f"expectation {label(r.expectation_config)} could not run: "
                          f"{r.exception_info.get('exception_message')}; check the suite file "
                          "quality/suites/ or the registration's [[checks]]")


def row_key(licence_number: str | None, raw: dict) -> str:
    """Identifies a quarantined row across runs: its licence number, else a hash of the silo row."""
    if licence_number:
        return licence_number
    body = json.dumps({k: v for k, v in raw.items() if k != ROW}, ensure_ascii=False,
                      sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()[:32]


def _quarantine_rows(batch, raw, reasons: dict[int, list[str]], key_field: str | None) -> pa.Table:
    if not reasons:
        return QUARANTINE_SCHEMA.empty_table()
    idx = sorted(reasons)
    conf = batch.take(pa.array(idx)).to_pylist()
    raws = raw.take(pa.array(idx)).to_pylist()
    values = []
    for i, row in zip(idx, conf):
        cols = [c for r in reasons[i] for c in r.split("(", 1)[1].rstrip(")").split(",") if c]
        # dates: the silo's own text says more than the (null) parsed value
        picked = {c: row.get(f"{UNPARSED}{c}") or row.get(c) for c in dict.fromkeys(cols)}
        values.append(json.dumps(picked, ensure_ascii=False, default=str))
    keys = [row_key(c.get(key_field) if key_field else None, r) for c, r in zip(conf, raws)]
    return pa.table({ROW: [r[ROW] for r in conf], "key": keys, "reasons": [reasons[i] for i in idx],
                     "values": values, "raw": [json.dumps(r, ensure_ascii=False) for r in raws]},
                    schema=QUARANTINE_SCHEMA)
