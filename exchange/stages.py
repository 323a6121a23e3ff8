"""The stages of one source's run. DAG tasks call these with ids; they return store URLs and counts.

(plan ->) extract -> conform -> validate -> publish. Each stage may run on another machine: it
reads its inputs from the store (base/storage.py, EXCHANGE_STORE_URL), works in a private
scratch folder of its own, and stores its outputs under the run's hand-off prefix (`handoff`:
staging/<source>/<run>/<name>.arrow) before it returns. It records failures on the run, so a
failed run publishes nothing and can simply be run again. A split source (registration [run])
is planned into partitions, extracted, conformed and validated per partition (each with its own
hand-offs, `extracted.p0002.arrow`), and merged in order by publish (exchange/partitions.py).
"""
from __future__ import annotations

import dataclasses
import json
import re
import shlex
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date
from functools import wraps
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import registration
from base import clock, memory, staging
from base.errors import ConfigError, DataError, GateHeld
from base.files import private_dir
from base.parallel import ordered_map
from base.settings import get_settings
from base.storage import Store
from catalog import registrations
from catalog.db.engine import shrink_caches
from catalog.ledger.service import Ledger
from catalog.publish import changes, log_delta, log_version
from catalog.publish.changes import held_records
from catalog.publish.key_status import check_signer, write_key_material
from catalog.publish.scratch_dirs import Scratch
from catalog.service import BaseMoved, Catalog
from catalog.serving import objections
from catalog.signing.keys import keystore_for
from connectors import state
from connectors.partitions import plan as plan_partitions
from exchange import alerts, aligned, partitions, row_state
from exchange.listing import source_listing
from exchange.unreported import Unreported
from quality.gates import SizeGate, drift, refuse_blank_licence_numbers, refuse_retyped
from quality.reasons import label_lists
from quality.validate import check_partition
from quality.validate import validate as run_validation
from schemas.conform import ROW, Conformer, conformed_schema, missing_columns


def run_key(airflow_run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", airflow_run_id)[:200]


def _context(source_id: str, key: str):
    settings = get_settings().private_home()
    handoff_prefix(source_id, key)           # refuses a key or id that would lead elsewhere
    reg = registrations.get(settings.catalog_url, source_id)       # the catalogue's copy, not a folder
    catalog = Catalog(settings.catalog_url, settings.store)
    ledger = Ledger(settings.catalog_url)
    return settings, reg, catalog, ledger, settings.store


@contextmanager
def _scratch() -> Iterator[Path]:
    """This task's private folder on this machine; gone when the stage returns (or, if the
    process dies, swept by the next one). Nothing in it is ever read by another task."""
    scratch = Scratch.make(private_dir(get_settings().scratch_dir), "task-")
    try:
        yield scratch.path
    finally:
        scratch.remove()
        shrink_caches()    # the catalogue connections' cached pages, then the freed memory:
        memory.release()   # the next stage in this process starts low


def _local(store: Store, key: str, scratch: Path) -> Path:
    """A stored hand-off as a file on this machine: in place on a local store, else fetched."""
    return store.local_file(key, scratch)


def _records_failure(stage):
    @wraps(stage)
    def wrapper(source_id: str, key: str, *args, **kwargs):
        try:
            return stage(source_id, key, *args, **kwargs)
        except GateHeld:                 # the run waits for a steward: held, not failed
            raise
        except Exception as exc:
            try:
                ledger = Ledger(get_settings().catalog_url)
                ledger.fail_run(ledger.start_run(source_id, key).id, f"{stage.__name__}: {exc}")
            except Exception:  # the source may not even be registered: keep the first error
                pass
            raise
    return wrapper


@_records_failure
def plan(source_id: str, key: str, dag_run_id: str | None = None) -> list[dict]:
    """The run's partitions (JSON, for Airflow to map extract, conform and validate over):
    [WHOLE] for a source that is not split, else the silo's checked and planned once here."""
    settings, reg, catalog, ledger, store = _context(source_id, key)
    if not reg.partitioned:
        return [dict(partitions.WHOLE)]
    catalog.register(source_listing(reg))
    run = ledger.start_run(source_id, key, dag_run_id)
    with _scratch() as scratch:
        conn = state.prepare(reg.id, reg.connector, ledger, store, handoff(source_id, key, "pending"), scratch)
        _check_columns(ledger, reg, run.id, conn)
        return plan_partitions(conn.conn, reg.run)


@_records_failure
def extract(source_id: str, key: str, dag_run_id: str | None = None, part: dict | None = None) -> dict:
    """The silo's rows (of one partition `part` of a split run) into the run's hand-off."""
    settings, reg, catalog, ledger, store = _context(source_id, key)
    split = partitions.is_split([part] if part else None)
    if not split:
        catalog.register(source_listing(reg))
    run = ledger.start_run(source_id, key, dag_run_id)
    with _scratch() as scratch:
        rows = _extract(reg, ledger, store, run.id, key, scratch, part)
    out = handoff(source_id, key, "extracted", part)
    return {"run_id": run.id, "path": store.url(out), "key": out, "rows": rows, "part": partitions.part_of(part)}


def _extract(reg, ledger, store: Store, run_id: int, key: str, scratch: Path, part: dict | None) -> int:
    source_id = reg.id
    conn = state.prepare(reg.id, reg.connector, ledger, store, handoff(source_id, key, "pending", part),
                         scratch, part)   # incremental: changes + mirror
    if not partitions.is_split([part] if part else None):     # a split run's were checked once, by plan
        _check_columns(ledger, reg, run_id, conn)
    tmp = staging.transient(scratch, "extracted")
    rows, writer = 0, None
    stamp = {aligned.PULL: aligned.token(key).encode()}      # conform aligns the mirror by it
    try:
        for batch in conn.batches():
            batch = batch.append_column(ROW, pa.array(np.arange(rows + 1, rows + 1 + batch.num_rows, dtype=np.int64)))
            writer = writer or staging.transient_writer(tmp, batch.schema.with_metadata(stamp))
            writer.write_batch(batch)
            rows += batch.num_rows
        if writer is None:
            cols = conn.columns()
            writer = staging.transient_writer(
                tmp, pa.schema([*((c, pa.string()) for c in cols), (ROW, pa.int64())], metadata=stamp))
    finally:
        if writer is not None:
            writer.close()
    store.put_file(tmp, handoff(source_id, key, "extracted", part), move=True)
    return rows


def _check_columns(ledger, reg, run_id: int, conn) -> None:
    types = conn.column_types() if hasattr(conn, "column_types") else dict.fromkeys(conn.columns(), "")
    gone = missing_columns(reg.mapping, list(types))
    if gone:
        raise DataError(f"the silo no longer has the mapped columns {gone}", source=reg.id,
                        rule="schema drift: mapped column present")
    _check_drift(ledger, reg, run_id, types)


def _check_drift(ledger, reg, run_id: int, types: dict[str, str]) -> None:
    """Retyped mapped columns fail the run; new unmapped columns are recorded on it."""

    d = drift(ledger.last_silo_columns(reg.id, run_id), types, set(reg.mapping.values()))
    ledger.record_quality(run_id, silo_columns=types, unmapped_columns=d.unmapped, new_columns=d.new)
    refuse_retyped(d, reg.id)


@_records_failure
def conform(source_id: str, key: str, part: dict | None = None) -> dict:
    """The run's rows in the certificate type's form. A whole run's rows are first matched
    against the source's row state (exchange/row_state.py): only the rows that are not carried
    over unchanged are conformed (all of them in a full run)."""
    settings, reg, catalog, ledger, store = _context(source_id, key)
    out = handoff(source_id, key, "conformed", part)
    with _scratch() as scratch:
        extracted = _local(store, handoff(source_id, key, "extracted", part), scratch)
        tmp = staging.transient(scratch, "conformed")
        if partitions.is_split([part] if part else None):
            rows = _conform_rows(Conformer(reg.source_map), staging.iter_batches(extracted, None), tmp, reg)
            detected: dict = {}
        else:
            rows, detected = _conform_detecting(reg, catalog, store, key, extracted, tmp, scratch)
        store.put_file(tmp, out, move=True)
    return {"path": store.url(out), "key": out, "rows": rows, "part": partitions.part_of(part), **detected}


def _conform_rows(conformer, batches, tmp: Path, reg) -> int:
    rows = 0
    with staging.transient_writer(tmp, conformed_schema(reg.ctype)) as writer:
        for conformed in ordered_map(conformer, batches):
            writer.write_batch(conformed)
            rows += conformed.num_rows
    return rows


DETECT_BATCH: int | None = None     # extracted rows per batch in conform (None: as written, <= 65,536)


def _conform_detecting(reg, catalog, store: Store, key: str, extracted: Path, tmp: Path, scratch: Path):
    """A whole run's conform with change detection: the rows not carried into `tmp` (in silo
    order), the `rows` hand-off (every row's hash, carried or not) and, for a delta run, the
    `delta` hand-off publish builds on. The extracted rows are read a batch at a time: each is
    hashed (its rows equal to the mirror's at their position take the state's hashes instead:
    exchange/aligned.py), matched against the row state and its rows not carried conformed, on a
    few threads. Returns (rows conformed, what was detected)."""
    version = catalog.current_version(reg.dataset)[0]
    schema = staging.read_schema(extracted)
    plan = row_state.plan(reg, store, version, schema, scratch, len(catalog.sources_of(reg.dataset)))
    mirror = (aligned.Aligned.open(store, reg.id, plan.state, plan.pull, schema)
              if plan.state is not None and ALIGN else None)
    with ThreadPoolExecutor(1) as pool:    # the state sorted while the first batches are hashed
        # a list: the Held is dropped from it once every batch is matched
        positional = False if mirror is None else mirror.hashes       # the state's hashes, shared
        loading = pool.submit(lambda: [row_state.Matcher(plan.state, positional=positional),
                                       row_state.Held(plan.held) if plan.held is not None else None])
        return _detect(reg, store, key, extracted, tmp, scratch, plan, version, loading, mirror)


ALIGN = True       # False: every row hashed, the mirror never compared (tests compare the two)


def _hashed(batch: pa.RecordBatch, start: int, mirror: aligned.Aligned | None, matcher) -> tuple:
    """The batch's (rows from position `start`) hashes and state rows (Matcher.index): a row
    equal to the mirror's at its position takes the state's hash and row there, unhashed."""
    same = mirror.same(batch, start) if mirror is not None else None
    if same is None or not same.any():
        h = row_state.row_hashes(batch)
        return h, matcher.index(h), 0
    at = np.flatnonzero(same)
    h = np.empty((batch.num_rows, 16), np.uint8)
    h[at] = mirror.state_hashes(at + start)
    idx = np.empty(batch.num_rows, np.int64)
    idx[at] = matcher.at(at + start)
    other = np.flatnonzero(~same)
    if len(other):
        h[other] = row_state.row_hashes(batch.take(pa.array(other)))
        idx[other] = matcher.index(h[other])
    return h, idx, len(at)


def _detect(reg, store: Store, key: str, extracted: Path, tmp: Path, scratch: Path, plan, version, loading,
            mirror: aligned.Aligned | None = None):
    """_conform_detecting's work once planned; `loading`: the future [Matcher, Held or None];
    `mirror`: the mirror aligned with the row state, if it is."""
    conformer = Conformer(reg.source_map)
    schema = conformed_schema(reg.ctype)
    rows_in = staging.Mapped(extracted, DETECT_BATCH)

    def numbered() -> Iterator[tuple[int, pa.RecordBatch]]:
        start = 0
        for batch in rows_in:
            yield start, batch
            start += batch.num_rows

    def step(item: tuple[int, pa.RecordBatch]):
        """The batch's hashes, state rows and rows not carried conformed (those held taken as
        they were conformed before), with how many were held."""
        start, batch = item
        matcher, held = loading.result()
        h, idx, unhashed = _hashed(batch, start, mirror, matcher)
        todo = np.flatnonzero(idx < 0)
        at = held.find(h[todo]) if held is not None else np.full(len(todo), -1)
        fresh, kept = todo[at < 0], todo[at >= 0]
        parts = [held.rows(at[at >= 0], batch.column(ROW).take(pa.array(kept)), schema)] if len(kept) else []
        if len(fresh):
            picked = batch if len(fresh) == batch.num_rows else batch.take(pa.array(fresh))
            parts.append(pa.Table.from_batches([conformer(picked)]))
        conformed = (parts[0] if len(parts) == 1 else pa.concat_tables(parts).sort_by(ROW)) if parts else None
        rows_in.drop(batch)         # read again from the file if the conformed rows touch it
        return h, idx, conformed, len(kept), unhashed

    hashes, found, licences, reused, unhashed = [np.zeros((0, 16), np.uint8)], [np.zeros(0, np.int64)], [], 0, 0
    checked = staging.transient(scratch, "checked")
    with staging.transient_writer(checked, schema) as writer:
        for h, idx, conformed, n, same in ordered_map(step, numbered(), ahead=3):
            hashes.append(h)
            found.append(idx)
            reused += n
            unhashed += same
            if conformed is not None:
                writer.write_table(conformed)
                if plan.state is not None:      # no state: nothing carried, scope needs none
                    licences.extend(conformed.column("licence_number").chunks)
            if mirror is not None:
                mirror.release()           # the mirror's pages read so far (the batches in flight read them again)
            if len(hashes) % 4 == 0:     # the batches' memory back every few (a trim costs ~5 ms)
                pa.default_memory_pool().release_unused()
    loaded = loading.result()
    matcher = loaded[0]
    matcher.done()                 # the whole-state arrays only matching used, and Held's rows
    loaded[1] = None
    h = np.concatenate(hashes)
    del hashes
    idx = np.concatenate(found)
    del found
    memory.release()               # the batches' and the sorted index's freed pages back before the whole-run arrays
    back, delta = row_state.scope(matcher, idx, pa.chunked_array(licences, pa.string()).combine_chunks())
    idx[back] = -1
    carried = int((idx >= 0).sum())
    rows = int(len(idx) - carried)
    _merge_back(checked, extracted, back, conformer, tmp)
    table = row_state.rows_table(h, idx, matcher)
    live = int(pc.sum(pc.and_(table.column("carried"), pc.invert(pc.fill_null(table.column("withdrawn"), False))))
                .as_py() or 0)
    mode = plan.mode if carried else "full"
    meta = {"fingerprint": plan.fingerprint, "mode": mode, "version": version, "carried": carried,
            "carried_live": live, "checked": rows, "reused": reused,
            "pull": aligned.pull_of(staging.read_schema(extracted)), "unhashed": unhashed,
            **({"reason": plan.reason or "nothing carried"} if mode == "full" else {})}
    _put_arrow(store, table.replace_schema_metadata({b"detect": json.dumps(meta).encode()}),
               handoff(reg.id, key, "rows"), scratch)
    if mode == "delta":
        lic = pa.table({"licence_number": delta})
        _put_arrow(store, lic.replace_schema_metadata({b"detect": json.dumps(meta).encode()}),
                   handoff(reg.id, key, "delta"), scratch)
    else:
        store.delete(handoff(reg.id, key, "delta"))
    return rows, {"change_detection": {k: v for k, v in meta.items() if k not in INTERNAL}}


INTERNAL = ("fingerprint", "pull", "unhashed")    # the rows hand-off's, not recorded on the run


def _merge_back(checked: Path, extracted: Path, back, conformer, out: Path) -> None:
    """The conformed rows into `out` in silo order: the checked ones and the carried rows
    pulled back (`back`: their positions), conformed here."""
    if not len(back):
        checked.replace(out)
        return
    pulled = staging.take_rows(extracted, back)
    extra = pa.Table.from_batches([conformer(b) for b in pulled.to_batches()] or [],
                                  schema=conformed_schema(conformer.ctype))
    at = extra.column(ROW).to_numpy()
    j = 0
    with staging.transient_writer(out, extra.schema) as writer:
        for batch in staging.iter_batches(checked, None):
            if not batch.num_rows:
                continue
            k = int(np.searchsorted(at, batch.column(ROW)[-1].as_py(), "right"))
            part = pa.Table.from_batches([batch])
            if k > j:
                part = pa.concat_tables([part, extra.slice(j, k - j)]).sort_by(ROW)
                j = k
            writer.write_table(part)
        writer.write_table(extra.slice(j))
    checked.unlink()


def _put_arrow(store: Store, table: pa.Table, key: str, scratch: Path) -> None:
    tmp = scratch / Path(key).name
    with staging.transient_writer(tmp, table.schema) as writer:
        writer.write_table(table)
    store.put_file(tmp, key, move=True)


@_records_failure
def validate(source_id: str, key: str, today: date | None = None, part: dict | None = None) -> dict:
    """Split the run's rows into accepted and quarantined; one partition of a split run is
    checked row by row only (its findings stored), and publish merges the partitions
    (exchange/partitions.py)."""
    settings, reg, catalog, ledger, store = _context(source_id, key)
    with _scratch() as scratch:
        if partitions.is_split([part] if part else None):
            findings = staging.transient(scratch, "findings")
            counts = check_partition(_local(store, handoff(source_id, key, "conformed", part), scratch),
                                     reg.ctype, findings, today or clock.today(), checks=reg.checks)
            out = store.put_file(findings, handoff(source_id, key, "findings", part), move=True)
            return {**counts, "key": out, "part": partitions.part_of(part)}
        run = ledger.start_run(source_id, key)
        conformed, extracted = (_local(store, handoff(source_id, key, n), scratch) for n in ("conformed", "extracted"))
        rows = _rows(store, source_id, key, scratch)
        checked = (lambda: _checked_raw(extracted, conformed, scratch)) if rows is not None else None
        state = _delta_state(store, source_id, rows, scratch)
        hashes = _conformed_hashes(rows, conformed) if state is not None else None
        left = _unreported(ledger, run.id, source_id, state, hashes, conformed)
        outcome = run_validation(conformed, extracted, reg.ctype, private_dir(scratch / "out"),
                                 today or clock.today(), checks=reg.checks,
                                 known=row_state.known_reasons(state, hashes) if state is not None else None,
                                 quiet=left.before if left is not None else None, checked=checked)
        if rows is not None:
            memory.release()      # validation's freed pages back before the new row state's whole-run arrays
            outcome = _carried_over(ledger, run.id, rows, conformed, outcome, store, source_id, key, scratch)
        scope = left.settle(_quiet_mask(conformed, outcome.quiet)) if left is not None else None
        return _recorded(catalog, ledger, reg, run.id, outcome, store, key, scope)


def _rows(store: Store, source_id: str, key: str, scratch: Path) -> pa.Table | None:
    """conform's `rows` hand-off (exchange/row_state.py), if it wrote one."""
    name = handoff(source_id, key, "rows")
    return staging.read_table(_local(store, name, scratch)) if store.exists(name) else None


def _delta_state(store: Store, source_id: str, rows: pa.Table | None, scratch: Path) -> Path | None:
    """A delta run's row state on this machine, if it is the one conform matched against."""
    if rows is None:
        return None
    meta = json.loads(rows.schema.metadata[b"detect"])
    name = row_state.state_key(source_id)
    if meta["mode"] != "delta" or not store.exists(name):
        return None
    state = row_state.read_meta(store, name)
    if (state.get("fingerprint"), state.get("version")) != (meta["fingerprint"], meta["version"]):
        return None           # not the state conform matched against: every row is checked
    return store.local_file(name, scratch)


def _conformed_hashes(rows: pa.Table, conformed: Path) -> pa.Array:
    """Each conformed row's row-state hash (conform's `rows` hand-off, by _row)."""
    at = staging.read_table(conformed, [ROW]).column(0)
    return rows.column("row_hash").take(pc.subtract(at, 1)).combine_chunks()


def _unreported(ledger, run_id: int, source_id: str, state: Path | None, hashes: pa.Array | None,
                conformed: Path) -> Unreported | None:
    """A delta run's quarantined rows that need not be reported again (exchange/unreported.py),
    or None: every quarantined row is reported and the whole queue of the source synced."""
    if state is None or "rechecked" not in staging.read_schema(state).names:
        return None            # a row state written before it kept what it re-checked
    lic = staging.read_table(conformed, ["licence_number"]).column(0).combine_chunks()
    return Unreported(state, hashes, lic, ledger.unsettled_keys(source_id, run_id))


def _quiet_mask(conformed: Path, quiet: pa.Array) -> np.ndarray:
    at = staging.read_table(conformed, [ROW]).column(0).to_numpy()
    return np.isin(at, quiet.to_numpy(zero_copy_only=False))


def _checked_raw(extracted: Path, conformed: Path, scratch: Path) -> Path:
    """The extracted rows that were conformed (all of them in a full run), in order."""
    at = staging.read_table(conformed, [ROW]).column(0)
    raw, release = staging.map_table(extracted)
    if len(at) == raw.num_rows:
        return extracted
    out = staging.transient(scratch, "checked_raw")
    keep = np.zeros(raw.num_rows, bool)
    keep[pc.subtract(at, 1).to_numpy()] = True
    with staging.transient_writer(out, raw.schema) as writer:
        for start in range(0, raw.num_rows, 262_144):
            part = raw.slice(start, 262_144)
            writer.write_table(part.filter(pa.array(keep[start:start + part.num_rows])))
            release()           # the pages read so far: memory stays a batch's
    return out


def _carried_over(ledger, run_id: int, rows: pa.Table, conformed: Path, outcome, store: Store,
                  source_id: str, key: str, scratch: Path):
    """The run's new row state (the `rowstate` hand-off publish commits) and its whole counts:
    the carried rows were accepted. What was carried and checked is recorded on the run."""
    meta = json.loads(rows.schema.metadata[b"detect"])
    checked = staging.read_table(conformed, [ROW, "licence_number", "status"])
    told = pq.read_table(outcome.quarantine_path, columns=[ROW]).column(0).combine_chunks()
    bad = pa.concat_arrays([told, outcome.quiet.cast(told.type)])       # reported or not
    new = row_state.new_state(rows, checked, bad, meta["fingerprint"], outcome.row_reasons, outcome.rechecked,
                              meta.get("pull"))
    _put_arrow(store, new, handoff(source_id, key, "rowstate"), scratch)
    # kept: quarantined rows whose failures were known, not checked again (their outcome carried)
    detected = {k: v for k, v in meta.items() if k not in INTERNAL}
    detected.update(checked=meta["checked"] - outcome.kept, carried=meta["carried"] + outcome.kept,
                    kept=outcome.kept)
    ledger.record_quality(run_id, change_detection=detected)
    return dataclasses.replace(outcome, extracted=rows.num_rows, accepted=outcome.accepted + meta["carried"])


def _recorded(catalog, ledger, reg, run_id: int, outcome, store: Store, key: str,
              scope: set[str] | None = None) -> dict:
    """A whole run's validation (an unsplit run's, or a split run's merged) recorded on the run
    and its files stored: Data Docs, results and quarantine before the queue points at them,
    the accepted rows last. `scope`: a delta run's queue sync settles only the entries of the
    keys it reports and of these (exchange/unreported.py); None: the source's whole queue."""
    ledger.record_counts(run_id, outcome.extracted, outcome.accepted, outcome.quarantined,
                         outcome.reasons)
    docs = _store_docs(store, reg.id, key, outcome)
    store.put_file(outcome.results_path, handoff(reg.id, key, "validation"))
    quarantine = store.put_file(outcome.quarantine_path, handoff(reg.id, key, "quarantine"))
    _queue_quarantine(catalog, ledger, reg, run_id, outcome, docs, scope)
    accepted = store.put_file(outcome.accepted_path, handoff(reg.id, key, "accepted"), move=True)
    return {"run_id": run_id, "extracted": outcome.extracted, "accepted": outcome.accepted,
            "quarantined": outcome.quarantined, "accepted_path": store.url(accepted),
            "quarantine_path": store.url(quarantine), "data_docs": docs,
            "part": dict(partitions.WHOLE)}


def _store_docs(store: Store, source_id: str, key: str, outcome) -> str | None:
    """The run's Data Docs site into the store (a re-run's replace the old); its index's key."""
    docs = handoff(source_id, key, "data_docs")
    store.delete_prefix(docs)
    if outcome.docs_path is None:
        return None
    store.put_dir(outcome.docs_path.parent, docs, move=True)
    return f"{docs}/index.html"


def _queue_quarantine(catalog, ledger, reg, run_id: int, outcome, docs_key: str | None,
                      scope: set[str] | None = None) -> None:
    cols = ["key", "row_hash", "reasons", "values"]     # the raw rows stay in the run's quarantine file
    rows = ({"key": k, "row_hash": h, "reasons": r, "values": v}
            for b in pq.ParquetFile(outcome.quarantine_path).iter_batches(columns=cols)
            for k, h, r, v in zip(*(b.column(c).to_pylist() for c in ("key", "row_hash")),
                                  label_lists(b.column("reasons")), b.column("values").to_pylist()))
    keys = pq.read_table(outcome.quarantine_path, columns=["key"]).column(0).combine_chunks()
    current = catalog.current_records_by_licence(reg.dataset, keys.unique().to_pylist())
    held = held_records(current, outcome.accepted_path, keys)
    with memory.settled_heap():         # a row's objects each: full passes skip the old ones
        ledger.sync_quarantine(run_id, reg.id, reg.dataset, rows, held, scope)
    ledger.record_quality(run_id, data_docs=docs_key)


def merge(source_id: str, key: str, parts: list[dict]) -> dict | None:
    """A split run made whole (exchange/partitions.py: the partitions' stored hand-offs, read
    here, the whole run's stored back) and validated over all its rows: the version-wide checks
    (uniqueness) and the counts, quarantine and Data Docs of the run. Nothing when the run is
    not split or was merged already."""
    settings, reg, catalog, ledger, store = _context(source_id, key)
    if not partitions.is_split(parts):
        return None
    parts = partitions.ordered(parts, source_id)
    prefix = handoff_prefix(source_id, key)
    if partitions.merged(store, prefix, parts):
        partitions.clean(store, prefix, parts)          # if a crash cut it short
        return None
    with _scratch() as scratch:
        findings = partitions.merge_pulls(store, prefix, parts, source_id, scratch)
        run = ledger.start_run(source_id, key)
        conformed, extracted = (_local(store, handoff(source_id, key, n), scratch) for n in ("conformed", "extracted"))
        outcome = run_validation(conformed, extracted, reg.ctype, private_dir(scratch / "out"),
                                 partitions.today_of(findings[0]), checks=reg.checks, findings=findings)
        result = _recorded(catalog, ledger, reg, run.id, outcome, store, key)
    partitions.clean(store, prefix, parts)
    return result


@_records_failure
def publish(source_id: str, key: str, parts: list[dict] | None = None) -> dict:
    """The run's accepted rows as the dataset's next version; a split run's partitions
    (`parts`, the plan) are merged first, in order."""
    settings, reg, catalog, ledger, store = _context(source_id, key)
    run = ledger.start_run(source_id, key)
    if run.state in ("published", "unchanged"):
        _commit_pull(store, source_id, key, ledger, run.version)   # if a crash stopped it
        if run.version:
            objections.close_corrected(catalog.engine, reg.dataset, run.version)
        return {"dataset": reg.dataset, "version": run.version, "state": run.state}
    if merge(source_id, key, parts or []) is not None:
        run = ledger.start_run(source_id, key)          # with the merged run's counts
    keys = keystore_for(settings)
    # no key, a wrong passphrase, or a key the catalogue does not publish: fail now (exit 2)
    check_signer(keys, catalog.engine, settings.jwks_path)
    _size_gate(catalog, ledger, reg, run)
    with _scratch() as scratch:
        accepted, conformed = (_local(store, handoff(source_id, key, n), scratch) for n in ("accepted", "conformed"))
        refuse_blank_licence_numbers(accepted, reg.id, reg.certificate_type)
        delta, on, carried_rows = _delta(store, source_id, key, scratch)
        result, diff, carried = _publish_version(catalog, reg, run, keys, accepted, conformed, scratch, delta, on,
                                                 carried_rows)
    _recovered(ledger, reg, run, result)
    write_key_material(keys, catalog.engine, settings.jwks_path)
    _commit_pull(store, source_id, key, ledger, result.version)   # row state, watermark, mirror, files
    for name in ("conformed", "accepted", "rows", "delta"):
        store.delete(handoff(source_id, key, name))
    catalog.settle()          # the version's WAL checkpoint, run meanwhile
    # objections being corrected at the source whose record this version changed: closed
    closed = objections.close_corrected(catalog.engine, result.dataset, result.version) \
        if result.state == "published" else []
    return {"dataset": result.dataset, "version": result.version, "state": result.state,
            "tree_size": result.tree_size, "root_hash": result.root_hash,
            "records": result.records, "appended": result.appended,
            "changes": {**diff.as_dict(), "held": carried.held},
            **_rows_checked(ledger, run.id), **({"objections_closed": closed} if closed else {})}


def _rows_checked(ledger, run_id: int) -> dict:
    """What change detection left to check (exchange/row_state.py), as recorded on the run."""
    detected = ledger.run_quality(run_id).get("change_detection") or {}
    return {k: detected[k] for k in ("checked", "carried") if k in detected}


PUBLISH_ATTEMPTS = 5       # builds of a version when other publishes of its dataset keep landing


def _publish_version(catalog, reg, run, keys, accepted: Path, conformed: Path, scratch: Path,
                     delta: log_version.Delta | None = None, on: int | None = None,
                     carried_rows: int | None = None):
    """Build the version in scratch on the dataset's current state (only the record states that
    changed: catalog/publish/log_version.py) and publish it; built again if another publish of
    the dataset lands meanwhile. `delta`: the run holds only its changed rows, found against
    version `on`, which must still be the current one (`carried_rows`: the rows it carried).
    Returns (result, changes, carried)."""
    work = scratch / "version"
    for attempt in range(1, PUBLISH_ATTEMPTS + 1):
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        if delta is None:
            base, state, versions, size = catalog.current_state(reg.dataset)
            lv = log_version.stage_log_version(accepted, conformed, state, versions, catalog.store,
                                               reg.dataset, reg.ctype, size, work)
        else:        # in proportion to the change: the run's scope and the map buckets it touches
            base, versions, size, built_on = catalog.delta_base(reg.dataset)
            if base != on:
                raise DataError(_moved(reg, on, base), source=reg.id, rule="change detection: version unchanged")
            lv = log_delta.stage_delta_version(accepted, conformed, built_on, versions, catalog.store,
                                               reg.dataset, reg.ctype, size, work, delta, carried_rows)
        carried = changes.Carried(lv.withdrawn_now, lv.held)
        try:     # committed only if the dataset is still at `base` under its lock
            return catalog.publish(run.id, source_listing(reg), lv, keys, base_version=base), lv.changes, carried
        except BaseMoved:        # another source of the dataset published meanwhile: build on it
            if attempt == PUBLISH_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _delta(store: Store, source_id: str, key: str,
           scratch: Path) -> tuple[log_version.Delta | None, int | None, int | None]:
    """A delta run's scope (conform's `delta` hand-off, exchange/row_state.py), the version its
    rows were matched against and how many rows it carried; (None, None, None) for a full run."""
    name = handoff(source_id, key, "delta")
    if not store.exists(name):
        return None, None, None
    table = staging.read_table(_local(store, name, scratch))
    meta = json.loads(table.schema.metadata[b"detect"])
    return (log_version.Delta(licences=table.column("licence_number").combine_chunks(),
                              carried=meta["carried_live"]), meta["version"], meta["carried"])


def _moved(reg, on: int | None, base: int | None) -> str:
    return (f"数据集在变更检测后已更新 (the dataset moved since change detection): {reg.dataset} is at "
            f"version {base}, this run's unchanged rows were matched against version {on}; run the whole "
            "run again (its conform step then checks every row)")


def _commit_pull(store: Store, source_id: str, key: str, ledger, version: int | None) -> None:
    """The run's pull becomes the source's state: its row state the source's (stamped with the
    `version` it was published as: exchange/row_state.py), its extracted rows the mirror, its
    watermark and taken files the ledger's (connectors/state.py)."""
    with _scratch() as scratch:
        kept = row_state.commit(store, source_id, handoff(source_id, key, "rowstate"), version, scratch,
                                handoff(source_id, key, "conformed"))
    # a row state kept as it was (the same rows) keeps the mirror it is aligned with: the run's
    # rows are those rows (exchange/aligned.py)
    keep = kept is not None and kept == aligned.mirror_pull(store, source_id)
    state.commit(source_id, key, store, handoff(source_id, key, "pending"),
                 handoff(source_id, key, "extracted"), ledger, keep_mirror=keep)


def _size_gate(catalog, ledger, reg, run) -> None:
    """A version far larger or smaller than the current one waits for a steward's approval."""

    gate = SizeGate(catalog.current_size(reg.dataset), run.accepted or 0, reg.gates["size_change"])
    approved = ledger.run_quality(run.id).get("approved_by")
    ledger.record_quality(run.id, size_gate=gate.as_dict())
    if gate.holds and not approved:
        reason = gate.reason(reg.id, run.run_key)
        ledger.hold_run(run.id, reason)
        _alert_once(ledger, "held", reg, run, "运行被规模闸门暂停，等待数据管理员批准 (held by the size gate): "
                    f"{reason}. 批准命令 (approve): {approve_command(reg.id, run.run_key)}", "held")
        raise GateHeld(reason, source=reg.id, rule="size gate")


def approve_command(source_id: str, key: str) -> str:
    """The exact command that lets a held run publish (cli/quality.py `approve`)."""
    return f"exchange approve {shlex.quote(source_id)} {shlex.quote(key)} --by NAME --note TEXT"


def _alert_once(ledger, kind: str, reg, run, message: str, state: str) -> None:
    """Send an alert about this run unless one of this kind was already sent for it (a held
    run run again, a published run re-entered): `send` never raises, nor does this."""
    run_id = run.dag_run_id or run.run_key
    try:
        if ledger.alerted(kind, reg.id, run_id):
            return
    except Exception as exc:
        alerts.log.error("alert %s for %s not checked: %s: %s", kind, reg.id, type(exc).__name__, exc)
        return
    alerts.send(alerts.Alert(kind, reg.dataset, source=reg.id,
                             dag_id=f"source__{reg.id}" if run.dag_run_id else None, run_id=run_id,
                             task="publish", state=state, message=message),
                ledger=ledger)


def _recovered(ledger, reg, run, result) -> None:
    """A run that refreshed the dataset after the source's last ended run failed: say so once."""
    try:
        before = ledger.last_ended_run(reg.id, run.id)
    except Exception as exc:
        alerts.log.error("recovery of %s not checked: %s: %s", reg.id, type(exc).__name__, exc)
        return
    if before is not None and before.state == "failed":
        _alert_once(ledger, "recovered", reg, run,
                    f"运行恢复 (recovered): 运行 {run.run_key} 成功 ({result.state}, 版本 version "
                    f"{result.version})；上一次运行 {before.run_key} 失败 (failed): {before.message or ''}",
                    result.state)


def run_all(source_id: str, key: str, today: date | None = None) -> dict:
    """The whole path in-process, without Airflow (tests and benchmarks), partition by
    partition as the DAG maps them."""
    parts = plan(source_id, key)
    for part in parts:
        extract(source_id, key, None, part)
        conform(source_id, key, part)
        validate(source_id, key, today, part)
    return publish(source_id, key, parts)


RUN_KEY = re.compile(r"(?!\.+\Z)[A-Za-z0-9._-]{1,200}")


def handoff_prefix(source_id: str, key: str) -> str:
    """staging/<source>/<run>: the store prefix of a run's hand-offs; a run key (run_key(), or
    --key) never leads out of it."""
    if not RUN_KEY.fullmatch(key) or not registration.ID_RE.fullmatch(source_id):
        raise ConfigError(f"source {source_id!r}, run key {key!r}: a run key is letters, digits, "
                          "'.', '_' and '-' (at most 200), and a source id as registered")
    return f"staging/{source_id}/{key}"


def handoff(source_id: str, key: str, name: str, part: dict | None = None) -> str:
    """The store key of a run's hand-off `name` (extracted, conformed, accepted, findings: Arrow
    IPC files; pending, quarantine, validation, data_docs), of one partition `part` of a split
    run if given (exchange/partitions.py names them)."""
    return partitions.handoff(handoff_prefix(source_id, key), name, part)
