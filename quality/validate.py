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
from concurrent.futures import ThreadPoolExecutor
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

TRANSIENT = {"compression": "none", "use_dictionary": False, "write_statistics": False}


def quarantine_schema(raw_schema: pa.Schema) -> pa.Schema:
    """One row per failing silo row: `raw` keeps the silo's own row as it was extracted."""
    return pa.schema([(ROW, pa.int64()), ("key", pa.string()), ("reasons", pa.list_(pa.string())),
                      ("values", pa.string()), ("raw", pa.struct(list(raw_schema)))])


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
    result = gx.validate(_to_pandas(table), suite, params)
    rows = table.column(ROW).to_numpy()
    failed: dict[int, list[str]] = defaultdict(list)
    for r in result.results:
        _raise_if_broken(r)
        for i in r.result.get("unexpected_index_list") or []:
            failed[int(rows[i])].append(label(r.expectation_config))
    gx.keep(result, "whole-version")
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
    # accepted.parquet lives until publish reads it once: plain pages write 3x faster than LZ4
    ok_writer = pq.ParquetWriter(tmp["accepted"], conf_file.schema_arrow, **TRANSIENT)
    q_schema = quarantine_schema(raw_file.schema_arrow)
    bad_writer = staging.writer(tmp["quarantine"], q_schema)
    batches = ((b, r, _to_pandas(b.select(columns))) for b, r in
               _aligned_batches(conf_file, raw_file, batch_rows))
    writes, pending = ThreadPoolExecutor(1), []
    try:
        for n, (batch, raw, frame) in enumerate(_prefetched(batches), start=1):
            result = gx.validate(frame, suite, params)
            reasons = _batch_reasons(batch, result, dup, summary)
            gx.keep(result, f"batch-{n:04d}")
            bad = np.zeros(batch.num_rows, dtype=bool)
            bad[list(reasons)] = True
            mask = pa.array(bad)
            pending.append(writes.submit(ok_writer.write_table, batch.filter(pc.invert(mask))))
            quarantined = _quarantine_rows(batch, raw, reasons, key_field, q_schema)
            pending.append(writes.submit(bad_writer.write_table, quarantined))
            for rs in reasons.values():
                counts.update(set(rs))
            n_in += batch.num_rows
            n_bad += int(bad.sum())
            n_ok += batch.num_rows - int(bad.sum())
        for f in pending:
            f.result()
        if n_in != raw_file.metadata.num_rows or n_in != n_ok + n_bad:
            raise ReconciliationError(
                f"extracted {raw_file.metadata.num_rows} rows but accepted {n_ok} + quarantined "
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
    results = out_dir / "validation.json"
    results.write_text(json.dumps({"suite": suite.name, "rows": n_in, "expectations": summary},
                                  ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    return Outcome(n_in, n_ok, n_bad, dict(counts.most_common()), paths["accepted"],
                   paths["quarantine"], results, gx.build_docs())


def _aligned_batches(conf_file, raw_file, batch_rows: int):
    """(conformed, raw) tables of the same rows, read whole row groups at a time: slicing
    row groups into other batch sizes costs Parquet readers three times as much."""
    def groups(pf):
        for i in range(pf.metadata.num_row_groups):
            yield pf.read_row_group(i)

    raw_groups, buffer = groups(raw_file), None
    md, start = conf_file.metadata, 0
    while start < md.num_row_groups:
        stop, rows = start, 0
        while stop < md.num_row_groups and (rows == 0 or rows + md.row_group(stop).num_rows <= batch_rows):
            rows += md.row_group(stop).num_rows
            stop += 1
        conf = conf_file.read_row_groups(list(range(start, stop)))
        start = stop
        while buffer is None or buffer.num_rows < conf.num_rows:
            more = next(raw_groups, None)
            if more is None:
                break
            buffer = more if buffer is None else pa.concat_tables([buffer, more])
        if buffer is None or buffer.num_rows < conf.num_rows:
            raise ReconciliationError(
                f"conforming made more rows than the {raw_file.metadata.num_rows} extracted; "
                "nothing will be published")
        yield conf, buffer.slice(0, conf.num_rows)
        buffer = buffer.slice(conf.num_rows)


def _prefetched(items):
    """The next item is made on a thread while the caller works on this one: Parquet reads
    and Arrow-to-pandas conversion release the GIL while GX works."""
    items = iter(items)
    with ThreadPoolExecutor(1) as pool:
        nxt = pool.submit(next, items, None)
        while (item := nxt.result()) is not None:
            nxt = pool.submit(next, items, None)
            yield item


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


_ENCODE = json.JSONEncoder(ensure_ascii=False, default=str).encode


def _columns_of(reason: str) -> list[str]:
    return [c for c in reason.split("(", 1)[1].rstrip(")").split(",") if c]


def _quarantine_rows(batch, raw, reasons: dict[int, list[str]], key_field: str | None,
                     schema: pa.Schema) -> pa.Table:
    """The failing rows: reasons, the offending values (the silo's own text for dates) and
    the raw silo row (kept as Arrow, not re-encoded row by row)."""
    if not reasons:
        return schema.empty_table()
    idx = sorted(reasons)
    take = pa.array(idx)
    named = {c for rs in reasons.values() for r in set(rs) for c in _columns_of(r)}
    wanted = [c for c in batch.schema.names
              if c in named or c.removeprefix(UNPARSED) in named or c in (ROW, key_field)]
    conf = batch.select(wanted).take(take).to_pydict()
    raw_rows = raw.take(take).combine_chunks()
    nulls = [None] * len(idx)
    # dates: the silo's own text says more than the (null) parsed value
    shown = {c: (conf.get(UNPARSED + c) or nulls, conf.get(c) or nulls) for c in named}
    values = []
    for n, i in enumerate(idx):
        cols = dict.fromkeys(c for r in reasons[i] for c in _columns_of(r))
        values.append(_ENCODE({c: shown[c][0][n] or shown[c][1][n] for c in cols}))
    keys = list(conf[key_field]) if key_field else list(nulls)
    for n in (n for n, k in enumerate(keys) if not k):       # rare: hash the silo row
        keys[n] = row_key(None, raw_rows.slice(n, 1).to_pylist()[0])
    raw_struct = pa.StructArray.from_arrays(
        [c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in raw_rows.columns],
        fields=list(raw_rows.schema))
    return pa.table({ROW: conf[ROW], "key": keys, "reasons": [reasons[i] for i in idx],
                     "values": values, "raw": raw_struct}, schema=schema)
