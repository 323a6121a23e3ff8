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

import re
import shlex
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from functools import wraps
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import registration
from base import clock, staging
from base.errors import ConfigError, DataError, GateHeld
from base.files import private_dir
from base.parallel import ordered_map
from base.settings import get_settings
from base.storage import Store
from catalog import registrations
from catalog.ledger.service import Ledger
from catalog.publish import changes, log_delta, log_version
from catalog.publish.changes import held_records
from catalog.publish.key_status import check_signer, write_key_material
from catalog.publish.scratch_dirs import Scratch
from catalog.service import BaseMoved, Catalog
from catalog.signing.keys import keystore_for
from connectors import state
from connectors.partitions import plan as plan_partitions
from exchange import alerts, partitions
from exchange.listing import source_listing
from quality.gates import SizeGate, drift, refuse_blank_licence_numbers, refuse_retyped
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
        pa.default_memory_pool().release_unused()   # the next stage in this process starts low


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
    try:
        for batch in conn.batches():
            batch = batch.append_column(ROW, pa.array(range(rows + 1, rows + 1 + batch.num_rows), pa.int64()))
            writer = writer or staging.transient_writer(tmp, batch.schema)
            writer.write_batch(batch)
            rows += batch.num_rows
        if writer is None:
            cols = conn.columns()
            writer = staging.transient_writer(
                tmp, pa.schema([*((c, pa.string()) for c in cols), (ROW, pa.int64())]))
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
    settings, reg, catalog, ledger, store = _context(source_id, key)
    out = handoff(source_id, key, "conformed", part)
    rows = 0
    with _scratch() as scratch:
        tmp = staging.transient(scratch, "conformed")
        with staging.transient_writer(tmp, conformed_schema(reg.ctype)) as writer:
            extracted = _local(store, handoff(source_id, key, "extracted", part), scratch)
            for conformed in ordered_map(Conformer(reg.source_map), staging.iter_batches(extracted, None)):
                writer.write_batch(conformed)
                rows += conformed.num_rows
        store.put_file(tmp, out, move=True)
    return {"path": store.url(out), "key": out, "rows": rows, "part": partitions.part_of(part)}


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
        outcome = run_validation(conformed, extracted, reg.ctype, private_dir(scratch / "out"),
                                 today or clock.today(), checks=reg.checks)
        return _recorded(catalog, ledger, reg, run.id, outcome, store, key)


def _recorded(catalog, ledger, reg, run_id: int, outcome, store: Store, key: str) -> dict:
    """A whole run's validation (an unsplit run's, or a split run's merged) recorded on the run
    and its files stored: Data Docs, results and quarantine before the queue points at them,
    the accepted rows last."""
    ledger.record_counts(run_id, outcome.extracted, outcome.accepted, outcome.quarantined,
                         outcome.reasons)
    docs = _store_docs(store, reg.id, key, outcome)
    store.put_file(outcome.results_path, handoff(reg.id, key, "validation"))
    quarantine = store.put_file(outcome.quarantine_path, handoff(reg.id, key, "quarantine"))
    _queue_quarantine(catalog, ledger, reg, run_id, outcome, docs)
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


def _queue_quarantine(catalog, ledger, reg, run_id: int, outcome, docs_key: str | None) -> None:
    cols = ["key", "row_hash", "reasons", "values"]     # the raw rows stay in the run's quarantine file
    rows = ({"key": k, "row_hash": h, "reasons": r, "values": v}
            for b in pq.ParquetFile(outcome.quarantine_path).iter_batches(columns=cols)
            for k, h, r, v in zip(*(b.column(c).to_pylist() for c in cols)))
    keys = pq.read_table(outcome.quarantine_path, columns=["key"]).column(0).combine_chunks()
    current = catalog.current_records_by_licence(reg.dataset, keys.unique().to_pylist())
    held = held_records(current, outcome.accepted_path, keys)
    ledger.sync_quarantine(run_id, reg.id, reg.dataset, rows, held)
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
        _commit_pull(store, source_id, key, ledger)   # if a crash stopped it
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
        result, diff, carried = _publish_version(catalog, reg, run, keys, accepted, conformed, scratch)
    _recovered(ledger, reg, run, result)
    write_key_material(keys, catalog.engine, settings.jwks_path)
    _commit_pull(store, source_id, key, ledger)   # watermark, mirror, files
    for name in ("conformed", "accepted"):
        store.delete(handoff(source_id, key, name))
    return {"dataset": result.dataset, "version": result.version, "state": result.state,
            "tree_size": result.tree_size, "root_hash": result.root_hash,
            "records": result.records, "appended": result.appended,
            "changes": {**diff.as_dict(), "held": carried.held}}


PUBLISH_ATTEMPTS = 5       # builds of a version when other publishes of its dataset keep landing


def _publish_version(catalog, reg, run, keys, accepted: Path, conformed: Path, scratch: Path,
                     delta: log_version.Delta | None = None):
    """Build the version in scratch on the dataset's current state (only the record states that
    changed: catalog/publish/log_version.py) and publish it; built again if another publish of
    the dataset lands meanwhile. `delta`: the run holds only its changed rows. Returns
    (result, changes, carried)."""
    work = scratch / "version"
    for attempt in range(1, PUBLISH_ATTEMPTS + 1):
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        if delta is None:
            base, state, versions, size = catalog.current_state(reg.dataset)
            lv = log_version.stage_log_version(accepted, conformed, state, versions, catalog.store,
                                               reg.dataset, reg.ctype, size, work)
        else:        # in proportion to the change: the run's scope and the map buckets it touches
            base, versions, size, on = catalog.delta_base(reg.dataset)
            lv = log_delta.stage_delta_version(accepted, conformed, on, versions, catalog.store,
                                               reg.dataset, reg.ctype, size, work, delta)
        carried = changes.Carried(lv.withdrawn_now, lv.held)
        try:     # committed only if the dataset is still at `base` under its lock
            return catalog.publish(run.id, source_listing(reg), lv, keys, base_version=base), lv.changes, carried
        except BaseMoved:        # another source of the dataset published meanwhile: build on it
            if attempt == PUBLISH_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _commit_pull(store: Store, source_id: str, key: str, ledger) -> None:
    """The run's pull becomes the source's state: its extracted rows the mirror, its watermark
    and taken files the ledger's (connectors/state.py)."""
    state.commit(source_id, key, store, handoff(source_id, key, "pending"),
                 handoff(source_id, key, "extracted"), ledger)


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
