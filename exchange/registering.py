"""`exchange register FILE`: a steward adds a source in numbered steps, each reporting.

1 file valid         the registration parses (unknown names refused with the known ones), its
                     connector is built, and where it goes: a new file, or an update of the same id
2 connection tested  sql: connect, the table, the mapped columns; http: the first page has the
                     registered shape; files: the drop folder is readable and a file parses
3 sample pulled      the first N rows (the batch iterator is stopped there), conformed
4 sample validated   the type's GX suite and the source's own checks: accepted, quarantined and
                     the failing expectations with their counts
5 registered         (not with --dry-run) the file's text stored in the catalogue with the source
                     and its dataset, in one transaction (Catalog.register): every scheduler and
                     worker reads it there; and a copy in this machine's sources folder

Nothing is written when a step fails or on a dry run; the sample is staged in a temporary
directory that is removed.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import registration
from base import clock, staging
from base.errors import ConfigError, ExchangeError, SourceError
from base.files import atomic_write
from base.settings import get_settings
from catalog import registrations
from catalog.service import Catalog
from connectors import build
from exchange.listing import source_listing
from quality.validate import validate  # imports Great Expectations lazily (in Gx)
from registration import Registration
from schemas.conform import ROW, Conformer, conformed_schema

STEPS = {1: "file valid", 2: "connection tested", 3: "sample pulled", 4: "sample validated",
         5: "registered"}
SAMPLE_ROWS = 1_000
MAX_SAMPLE_ROWS = 1_000_000
PREVIEW_ROWS = 20
PROBE_ATTEMPTS = 2          # an HTTP connection test does not wait out the whole retry policy


@dataclass
class Step:
    number: int
    name: str
    state: str              # ok | failed | skipped
    summary: str
    detail: dict = field(default_factory=dict)


@dataclass
class Plan:
    """Where the registration file goes: a new file, or the file that registers the same id."""
    target: Path
    action: str             # new | update


@dataclass
class Report:
    file: str
    dry_run: bool
    source: str | None = None
    dataset: str | None = None
    dag_id: str | None = None
    steps: list[Step] = field(default_factory=list)
    preview: list[dict] = field(default_factory=list)       # the first conformed rows
    validation: dict = field(default_factory=dict)
    registered: bool = False

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def register_file(path: Path, *, dry_run: bool = False, by: str | None = None,
                  sample_rows: int = SAMPLE_ROWS, today: date | None = None,
                  on_step: Callable[[Step, Report], None] | None = None) -> Report:
    """Run the steps in order; the first that fails raises its ExchangeError, carrying
    `step` (its number) and `report` (the steps so far)."""
    if not 0 < sample_rows <= MAX_SAMPLE_ROWS:
        raise ConfigError(f"--sample must be between 1 and {MAX_SAMPLE_ROWS:,} rows, not {sample_rows}")
    path, sources_dir = Path(path), get_settings().sources_dir
    report = Report(file=str(path), dry_run=dry_run)

    def step(n: int, fn, *args, keep: str | None = None):
        try:
            value, summary, detail = fn(*args)
        except ExchangeError as exc:
            report.steps.append(Step(n, STEPS[n], "failed", str(exc)))
            exc.step, exc.report = n, report
            if on_step:
                on_step(report.steps[-1], report)
            raise
        report.steps.append(Step(n, STEPS[n], "ok", summary, detail))
        if keep:
            setattr(report, keep, value)
        if on_step:
            on_step(report.steps[-1], report)
        return value

    reg, plan = step(1, check_file, path, sources_dir)
    report.source, report.dataset, report.dag_id = reg.id, reg.dataset, reg.dag_id
    step(2, probe_connection, reg)
    with tempfile.TemporaryDirectory(prefix=f"exchange-register-{reg.id}-") as tmp:
        step(3, pull_sample, reg, sample_rows, Path(tmp), keep="preview")
        step(4, validate_sample, reg, Path(tmp), today or clock.today(), keep="validation")
    if dry_run:
        report.steps.append(Step(5, STEPS[5], "skipped", f"--dry-run: nothing written ({plan.action} "
                                 f"registration would go to {plan.target})"))
        if on_step:
            on_step(report.steps[-1], report)
        return report
    step(5, add, reg, path, plan, by)
    report.registered = True
    return report


# --- 1 file valid ------------------------------------------------------------------------
def check_file(path: Path, sources_dir: Path):
    if not path.is_file():
        raise ConfigError(f"{path}: no such registration file")
    reg = registration.load(path)           # every key's type, identifiers, paths under their roots
    connector(reg)                      # the connector itself is built here
    plan = plan_target(reg, sources_dir)
    detail = {"source": reg.id, "dataset": reg.dataset, "dag_id": reg.dag_id,
              "certificate_type": reg.certificate_type, "connector": reg.connector["kind"],
              "action": plan.action, "target": str(plan.target)}
    return ((reg, plan), f"source {reg.id} -> dataset {reg.dataset} ({reg.certificate_type}, "
            f"{reg.connector['kind']}); {plan.action}: {plan.target}", detail)


def plan_target(reg: Registration, sources_dir: Path) -> Plan:
    """The file already registering this id is replaced (an update); else <id>.toml, which must
    not hold another source. An update may not move the source to another dataset (the
    catalogue's, or the folder's file)."""
    try:
        stored = registrations.dataset_of(get_settings().catalog_url, reg.id)
    except ExchangeError:
        raise
    except Exception as exc:
        raise ExchangeError(f"source {reg.id}: the catalogue could not be read ({type(exc).__name__}: "
                            f"{exc}); nothing was registered") from exc
    if stored and stored != reg.dataset:
        raise ConfigError(f"source {reg.id} is registered for dataset {stored} (in the catalogue); a "
                          f"registration cannot move it to {reg.dataset}: give it a new id")
    for other in sorted(sources_dir.glob("*.toml")) if sources_dir.is_dir() else ():
        if _id_of(other) != reg.id:
            continue
        try:
            before = registration.load(other).dataset
        except (ExchangeError, UnicodeDecodeError):
            before = None               # a broken file of the same id: the update mends it
        if before and before != reg.dataset:
            raise ConfigError(f"source {reg.id} is registered for dataset {before} ({other}); a "
                              f"registration cannot move it to {reg.dataset}: give it a new id")
        return Plan(other, "update")
    target = sources_dir / f"{reg.id}.toml"
    if target.exists():
        raise ConfigError(f"{target} already registers another source ({_id_of(target)!r}); "
                          f"rename one of them")
    return Plan(target, "update" if stored else "new")


def _id_of(path: Path) -> str | None:
    try:
        return tomllib.loads(path.read_text("utf-8")).get("id")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None


def connector(reg: Registration, **caps):
    """The registration's connector, with settings capped for a probe or a sample (e.g.
    batch_rows=N). A file drop's unreadable file is reported, never moved to rejected/."""
    conn = build(reg.connector, reg.id)
    changes = {k: min(getattr(conn.settings, k), cap) for k, cap in caps.items()
               if hasattr(conn.settings, k)}
    if changes:
        conn = type(conn)(dataclasses.replace(conn.settings, **changes), reg.id)
    if hasattr(conn, "move_bad"):
        conn.move_bad = False
    return conn


# --- 2 connection tested -----------------------------------------------------------------
def probe_connection(reg: Registration):
    kind = reg.connector["kind"]
    if kind == "sql":
        conn = connector(reg)
        columns = list(conn.column_types())          # connects; the table must be there
        detail = {"url": conn.safe_url, "table": conn.settings.table}
        summary = f"{conn.safe_url}, table {conn.settings.table}"
    elif kind == "http":
        conn = connector(reg, attempts=PROBE_ATTEMPTS)
        first = _first_batch(conn)                   # page 1, checked against `fields`
        columns = conn.columns()
        detail = {"url": reg.connector.get("url") or f"conn_id {reg.connector.get('conn_id')}",
                  "path": conn.settings.path, "first_page_records": first.num_rows if first else 0}
        summary = (f"first page of {detail['url']}{conn.settings.path}: {detail['first_page_records']} records "
                   "of the registered shape")
    else:
        conn = connector(reg)
        drop = conn.drop
        if not drop.is_dir() or not os.access(drop, os.R_OK | os.X_OK):
            raise SourceError(f"source {reg.id}: the drop folder {drop} does not exist or cannot be "
                              "read; check connector.path and the folder's permissions")
        files = [p.name for p in conn.pending()]
        columns = conn.columns()
        first = _first_batch(conn)                   # the first file parses
        detail = {"folder": str(drop), "files": files, "first_batch_rows": first.num_rows if first else 0}
        summary = (f"{drop}: {len(files)} file(s) waiting, {files[0]} parses" if files else
                   f"{drop}: readable, no file waiting yet (nothing to sample)")
    missing = [c for c in reg.mapping.values() if c not in columns]
    if missing:
        raise ConfigError(f"source {reg.id}: the silo has no column {', '.join(map(repr, missing))} "
                          f"named in [mapping]; its columns: {', '.join(columns) or '(none)'}")
    detail |= {"columns": columns, "unmapped_columns": [c for c in columns if c not in reg.mapping.values()]}
    return None, f"{summary}; {len(reg.mapping)} mapped columns present", detail


def _first_batch(conn):
    batches = conn.batches()
    try:
        return next(batches, None)
    finally:
        batches.close()


# --- 3 sample pulled ---------------------------------------------------------------------
def pull_sample(reg: Registration, n: int, workdir: Path):
    conn = connector(reg, batch_rows=n)
    extracted, conformed = staging.transient(workdir, "extracted"), staging.transient(workdir, "conformed")
    rows, writer = 0, None
    batches = conn.batches()
    try:
        for batch in batches:
            batch = batch.slice(0, n - rows)
            batch = batch.append_column(ROW, pa.array(range(rows + 1, rows + 1 + batch.num_rows), pa.int64()))
            writer = writer or staging.transient_writer(extracted, batch.schema)
            writer.write_batch(batch)
            rows += batch.num_rows
            if rows >= n:
                break                   # never the whole silo
        if writer is None:
            writer = staging.transient_writer(extracted, pa.schema([*((c, pa.string()) for c in conn.columns()),
                                                          (ROW, pa.int64())]))
    finally:
        batches.close()
        if writer is not None:
            writer.close()
    with staging.transient_writer(conformed, conformed_schema(reg.ctype)) as out:
        conform = Conformer(reg.source_map)
        for batch in staging.iter_batches(extracted, 65_536):
            out.write_batch(conform(batch))
    shown = [ROW, *reg.ctype.field_names]
    first = next(staging.iter_batches(conformed, PREVIEW_ROWS, shown), None)
    preview = first.to_pylist() if first is not None else []
    whole = "" if rows >= n else " (the whole silo)"
    return preview, f"{rows} rows{whole} conformed; showing the first {len(preview)}", {
        "rows": rows, "limit": n, "stopped_early": rows >= n}


# --- 4 sample validated ------------------------------------------------------------------
def validate_sample(reg: Registration, workdir: Path, today: date):
    conformed, extracted = staging.transient(workdir, "conformed"), staging.transient(workdir, "extracted")
    if staging.num_rows(conformed) == 0:
        return {"extracted": 0, "accepted": 0, "quarantined": 0, "failing": []}, \
            "no rows to validate", {}
    out = validate(conformed, extracted, reg.ctype,
                   workdir / "quality", today, checks=reg.checks, docs=False)
    quarantined = pq.read_table(out.quarantine_path, columns=[ROW, "key", "reasons", "values"]).to_pylist()
    failing = []
    for expectation, count in out.reasons.items():
        example = next(q for q in quarantined if expectation in q["reasons"])
        failing.append({"expectation": expectation, "rows": count,
                        "example": {"row": example[ROW], "key": example["key"], "values": example["values"]}})
    result = {"extracted": out.extracted, "accepted": out.accepted, "quarantined": out.quarantined,
              "checks": len(reg.checks), "failing": failing}
    return result, (f"{out.accepted} accepted, {out.quarantined} quarantined of {out.extracted}; "
                    f"{len(failing)} failing expectation(s)"), {}


# --- 5 registered ------------------------------------------------------------------------
def add(reg: Registration, path: Path, plan: Plan, by: str | None):
    """Copy the file atomically, then the catalogue (the text every machine reads); if the
    catalogue fails the file goes back."""
    settings = get_settings()
    data = path.read_bytes()
    previous = plan.target.read_bytes() if plan.target.exists() else None
    plan.target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(plan.target, data, mode=0o644)
    try:
        changed = Catalog(settings.catalog_url, settings.store).register(
            source_listing(dataclasses.replace(reg, path=plan.target), toml=data.decode("utf-8")), by=by)
    except BaseException as exc:
        if previous is None:
            plan.target.unlink(missing_ok=True)
        else:
            atomic_write(plan.target, previous, mode=0o644)
        if isinstance(exc, Exception) and not isinstance(exc, ExchangeError):
            raise ExchangeError(f"source {reg.id}: the catalogue could not record it "
                                f"({type(exc).__name__}: {exc}); nothing was registered") from exc
        raise
    return None, (f"{plan.action}: {plan.target}; DAG {reg.dag_id} on Airflow's next parse; "
                  f"dataset {reg.dataset} in the catalogue"
                  + (f" (changed: {', '.join(changed)})" if changed else " (metadata unchanged)")), {
        "action": plan.action, "target": str(plan.target), "dag_id": reg.dag_id,
        "dataset": reg.dataset, "changed": changed, "by": by}
