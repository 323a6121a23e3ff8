"""The catalogue's rules, in one place: DAG tasks, the CLI and the API all write through here."""
from __future__ import annotations

import json
import os
import shutil
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from base import clock
from catalog import index_load, status as statuses, store
from catalog.db import engine_for
from catalog.keys import KeyStore, head_hash, tree_head_payload
from catalog.models import Alert as AlertRow
from catalog.models import (Dataset, DatasetVersion, MetadataChange, QuarantineEntry, Record,
                            Run, RunQuality, Source, TakenFile, Watermark)
from trust.verify import label_unsigned, make_bundle
from base.errors import NotFound, PublishError
from registration import Registration

FINAL = ("published", "unchanged")
METADATA = ("title", "steward", "description", "department", "department_name", "sharing",
            "update_cycle")     # a dataset's stewarded metadata: its changes are kept
HISTORY_COLUMNS = ("changed_at", "field", "old_value", "new_value", "changed_by", "source_id",
                   "source_file")


def utcnow() -> datetime:
    return clock.now()


ANY_BASE = object()       # Catalog.publish without a base version to check


class BaseMoved(PublishError):
    """Another publish of the dataset committed while this version was built on the one before."""


def _lock_dataset(s: Session, dataset: str) -> Dataset:
    """The dataset's row, locked for the rest of the transaction: FOR UPDATE, and on SQLite
    (which has no row locks and reads outside a transaction until its first write) a no-op
    write first, which takes the database's write lock before the row is read."""
    if s.get_bind().dialect.name == "sqlite":
        s.execute(sa.update(Dataset.__table__).where(Dataset.id == dataset)
                  .values(current_version=Dataset.__table__.c.current_version))
    return s.get(Dataset, dataset, with_for_update=True, populate_existing=True)


@dataclass(frozen=True)
class PublishResult:
    dataset: str
    version: int | None      # None: nothing new to publish
    state: str               # published | unchanged
    tree_size: int
    root_hash: str


class Catalog:
    def __init__(self, url: str, store_dir: Path, *, pre_ping: bool = True):
        self.engine = engine_for(url, pre_ping)
        self.store_dir = store_dir

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # --- sources and runs -------------------------------------------------------------
    def register(self, reg: Registration, by: str | None = None) -> list[str]:
        """Add or update a source and its dataset; every change of the stewarded metadata
        (METADATA) is kept in dataset_metadata_changes, the first registration's values too.
        Returns the metadata fields that changed."""
        now = utcnow()
        with self.session() as s, s.begin():
            ds = s.get(Dataset, reg.dataset)
            meta = {"title": reg.title, "steward": reg.steward, "description": reg.description or None,
                    "department": reg.department, "department_name": reg.department_name or None,
                    "sharing": reg.sharing, "update_cycle": reg.update_cycle}
            attrs = dict(certificate_type=reg.certificate_type, type_version=reg.ctype.version, **meta)
            old = dict.fromkeys(meta) if ds is None else {k: getattr(ds, k) for k in meta}
            if ds is None:
                s.add(Dataset(id=reg.dataset, created_at=now, **attrs))
                s.flush()
            else:
                for k, v in attrs.items():
                    setattr(ds, k, v)
            changed = [k for k, v in meta.items() if old[k] != v]
            s.add_all(MetadataChange(dataset_id=reg.dataset, field=k, old_value=old[k], new_value=meta[k],
                                     changed_at=now, changed_by=by, source_id=reg.id,
                                     source_file=str(reg.path) if reg.path else None)
                      for k in changed)
            src = s.get(Source, reg.id)
            if src is None:
                s.add(Source(id=reg.id, dataset_id=reg.dataset, connector_kind=reg.connector["kind"],
                             registration=_jsonable(reg.as_dict()), registered_at=now))
            else:
                src.registration = _jsonable(reg.as_dict())
        return changed

    def dataset(self, dataset: str) -> dict:
        """A dataset's metadata, its sources and the history of its metadata changes."""
        with self.session() as s:
            ds = s.get(Dataset, dataset)
            if ds is None:
                known = s.scalars(sa.select(Dataset.id).order_by(Dataset.id)).all()
                raise NotFound(f"no dataset {dataset!r}; known: {', '.join(known) or '(none)'}")
            sources = s.scalars(sa.select(Source).where(Source.dataset_id == dataset)
                                .order_by(Source.id)).all()
            history = s.scalars(sa.select(MetadataChange).where(MetadataChange.dataset_id == dataset)
                                .order_by(MetadataChange.id)).all()
            return {"dataset": ds.id, "certificate_type": ds.certificate_type,
                    "type_version": ds.type_version, "current_version": ds.current_version,
                    "created_at": ds.created_at, **{k: getattr(ds, k) for k in METADATA},
                    "sources": [{"source": x.id, "connector": x.connector_kind,
                                 "registered_at": x.registered_at, "registration": x.registration}
                                for x in sources],
                    "history": [{c: getattr(h, c) for c in HISTORY_COLUMNS} for h in history]}

    def start_run(self, source_id: str, run_key: str, dag_run_id: str | None = None) -> Run:
        """The run, running (made if new); its owner is this process inside run_owner.owning()
        (`exchange run`, `approve`), else none (Airflow). Other runs of the source whose owner
        is gone are failed first."""
        from catalog import run_owner

        owner = run_owner.current()
        with self.session() as s, s.begin():
            run = s.scalar(sa.select(Run).where(Run.source_id == source_id, Run.run_key == run_key))
            if run is None:
                run = Run(source_id=source_id, run_key=run_key, state="running", started_at=utcnow(),
                          dag_run_id=dag_run_id)
                s.add(run)
            elif run.state not in FINAL:
                run.state, run.message = "running", None
            if run.state == "running":
                run.owner_host, run.owner_pid, run.owner_start = (
                    (owner["host"], owner["pid"], owner["start"]) if owner else (None, None, None))
            s.flush()
        self.reap_orphans(source_id, keep=run.id)
        return run

    def reap_orphans(self, source_id: str | None = None, keep: int | None = None) -> list[int]:
        """Fail every running run (of the source) whose owner process on this host is gone;
        returns their ids. Runs without an owner (Airflow's) are not judged here."""
        from catalog import run_owner

        q = (sa.select(Run.id, Run.source_id, Run.run_key, Run.owner_host, Run.owner_pid, Run.owner_start)
             .where(Run.state == "running", Run.owner_host.is_not(None)))
        if source_id:
            q = q.where(Run.source_id == source_id)
        with self.session() as s:
            candidates = s.execute(q).all()
        reaped = []
        for rid, source, key, host, pid, start in candidates:
            if rid == keep or not run_owner.gone({"host": host, "pid": pid, "start": start}):
                continue
            message = (f"the process that ran it (pid {pid} on {host}, `exchange run` or "
                       "`exchange approve`) is gone: killed or crashed outside Airflow; nothing of "
                       f"the run was published. Run it again (`exchange run {source} --key {key}`)")
            with self.session() as s, s.begin():     # only if still running under that owner
                n = s.execute(sa.update(Run.__table__).where(
                    Run.id == rid, Run.state == "running", Run.owner_pid == pid, Run.owner_host == host)
                    .values(state="failed", message=message, finished_at=utcnow())).rowcount
            if n:
                reaped.append(rid)
        return reaped

    def get_run(self, source_id: str, run_key: str) -> Run:
        with self.session() as s:
            run = s.scalar(sa.select(Run).where(Run.source_id == source_id, Run.run_key == run_key))
            if run is None:
                raise NotFound(f"no run {run_key!r} for source {source_id!r}")
            return run

    def record_counts(self, run_id: int, extracted: int, accepted: int, quarantined: int,
                      reasons: dict[str, int]) -> None:
        with self.session() as s, s.begin():
            run = s.get(Run, run_id)
            run.extracted, run.accepted, run.quarantined, run.reasons = (
                extracted, accepted, quarantined, reasons)

    def fail_run(self, run_id: int, message: str) -> None:
        with self.session() as s, s.begin():
            run = s.get(Run, run_id)
            if run.state not in FINAL:
                run.state, run.message, run.finished_at = "failed", message[:2000], utcnow()

    # --- publishing -------------------------------------------------------------------
    def publish(self, run_id: int, reg: Registration, staged: store.StagedVersion,
                keys: KeyStore, now: datetime | None = None, *, base_version=ANY_BASE) -> PublishResult:
        """One transaction: the version, its records index and the run's state, or nothing.
        `base_version`: the current version `staged` was built on (its withdrawals are computed
        against it); if another publish moved the dataset on meanwhile, BaseMoved is raised
        under the dataset's lock, before anything is written, and the caller builds again."""
        now = now or utcnow()
        root_hex = staged.root.hex()
        final_dir: Path | None = None
        # the loader attaches its scratch file (SQLite) before the transaction, detaches it after
        with self.engine.connect() as conn, index_load.loader(conn) as loader, \
                Session(conn, expire_on_commit=False) as s:
            try:
                with s.begin():
                    ds = _lock_dataset(s, reg.dataset)   # publishes of one dataset: one at a time
                    run = s.get(Run, run_id)
                    if run.state in FINAL:       # the same run again: publish nothing twice
                        return PublishResult(reg.dataset, run.version, run.state,
                                             run.accepted or 0, "")
                    if base_version is not ANY_BASE and ds.current_version != base_version:
                        raise BaseMoved(f"dataset {ds.id} moved from version {base_version} to "
                                        f"{ds.current_version} while this version was built")
                    prev = (s.get(DatasetVersion, (ds.id, ds.current_version))
                            if ds.current_version else None)
                    if prev and prev.content_digest == staged.content_digest:
                        run.state, run.finished_at, run.version = "unchanged", now, prev.version
                        return PublishResult(ds.id, prev.version, "unchanged", prev.tree_size, root_hex)
                    version = (prev.version if prev else 0) + 1
                    jws = keys.sign_tree_head(tree_head_payload(
                        ds.id, version, staged.tree_size, staged.root, now,
                        prev.signed_tree_head if prev else None))
                    (staged.directory / "head.jws").write_text(jws, encoding="ascii")
                    final_dir = store.version_dir(self.store_dir, ds.id, version)
                    if final_dir.exists():       # left by a crash before its commit: not published
                        shutil.rmtree(final_dir)
                    final_dir.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(staged.directory, final_dir)
                    s.add(DatasetVersion(
                        dataset_id=ds.id, version=version, tree_size=staged.tree_size,
                        root_hash=root_hex, content_digest=staged.content_digest,
                        signed_tree_head=jws, head_hash=head_hash(jws),
                        previous_head_hash=prev.head_hash if prev else None, kid=keys.signer().kid,
                        type_version=reg.ctype.version, path=str(final_dir), run_id=run.id,
                        published_at=now))
                    s.flush()
                    _insert_index(loader, ds.id, version, final_dir / "index.parquet")
                    statuses.record_changes(s, ds.id, version, Path(prev.path) if prev else None,
                                            final_dir, now)
                    ds.current_version = version
                    run.state, run.finished_at, run.version = "published", now, version
                return PublishResult(ds.id, version, "published", staged.tree_size, root_hex)
            except Exception as exc:
                if final_dir is not None and final_dir.exists():
                    shutil.rmtree(final_dir, ignore_errors=True)
                if isinstance(exc, PublishError):
                    raise
                raise PublishError(f"dataset {reg.dataset}: the version was not published "
                                   f"({type(exc).__name__}: {exc}); nothing of it was kept, "
                                   "re-run the DAG run") from exc

    # --- pull state (connectors/state.py): advanced only after a publish ----------------
    def watermark(self, source_id: str) -> tuple[str, str] | None:
        """(column, value) of the source's committed watermark, if any."""
        with self.session() as s:
            w = s.get(Watermark, source_id)
            return (w.column, w.value) if w else None

    def current_version_path(self, dataset: str) -> Path | None:
        """The directory of the dataset's current version (the snapshot diff reads it)."""
        return self.current_version(dataset)[1]

    def current_version(self, dataset: str) -> tuple[int | None, Path | None]:
        """The dataset's current version and its directory, read together (None, None before
        the first). A publish built on them passes the version as `base_version`."""
        with self.session() as s:
            row = s.execute(sa.select(Dataset.current_version, DatasetVersion.path).outerjoin(
                DatasetVersion, sa.and_(Dataset.id == DatasetVersion.dataset_id,
                                        Dataset.current_version == DatasetVersion.version))
                .where(Dataset.id == dataset)).first()
            if row is None or row[0] is None:
                return None, None
            return row[0], Path(row[1])

    def taken_files(self, source_id: str) -> set[str]:
        with self.session() as s:
            return set(s.scalars(sa.select(TakenFile.sha256).where(TakenFile.source_id == source_id)))

    def commit_pull(self, source_id: str, run_key: str, watermark: tuple[str, str] | None,
                    files: list[tuple[str, str]]) -> None:
        """One transaction: the new watermark and the (sha256, name) of the files taken.
        Idempotent: committing the same run again changes nothing."""
        now = utcnow()
        with self.session() as s, s.begin():
            if watermark is not None:
                w = s.get(Watermark, source_id)
                if w is None:
                    s.add(Watermark(source_id=source_id, column=watermark[0], value=watermark[1],
                                    run_key=run_key, updated_at=now))
                else:
                    w.column, w.value, w.run_key, w.updated_at = (*watermark, run_key, now)
            for sha, name in files:
                if s.get(TakenFile, (source_id, sha)) is None:
                    s.add(TakenFile(source_id=source_id, sha256=sha, name=name, run_key=run_key,
                                    taken_at=now))

    # --- reading ----------------------------------------------------------------------
    def datasets(self) -> list[dict]:
        with self.session() as s:
            rows = s.execute(sa.select(Dataset, DatasetVersion).outerjoin(
                DatasetVersion, sa.and_(DatasetVersion.dataset_id == Dataset.id,
                                        DatasetVersion.version == Dataset.current_version))
                .order_by(Dataset.id)).all()
            return [{"dataset": d.id, "title": d.title, "certificate_type": d.certificate_type,
                     "department": d.department, "sharing": d.sharing,
                     "update_cycle": d.update_cycle, "version": d.current_version,
                     "records": v.tree_size if v else 0,
                     "published_at": v.published_at.isoformat() if v else None,
                     "root_hash": v.root_hash if v else None} for d, v in rows]

    def versions(self, dataset_id: str, limit: int = 50) -> list[dict]:
        """A dataset's versions, newest first."""
        with self.session() as s:
            return [{"version": v.version, "records": v.tree_size, "root_hash": v.root_hash,
                     "published_at": v.published_at, "kid": v.kid, "type_version": v.type_version,
                     "run_id": v.run_id}
                    for v in s.scalars(sa.select(DatasetVersion).where(DatasetVersion.dataset_id == dataset_id)
                                       .order_by(DatasetVersion.version.desc()).limit(limit))]

    def lookup(self, holder_key: str, today: date | None = None) -> list[dict]:
        """A holder's current records. The API's hot path: a prebuilt statement on the driver
        (catalog/rawdb.py), in autocommit."""
        from catalog.rawdb import raw

        today = today or clock.today()
        prefix = store.holder_prefix(holder_key)
        r = raw(self.engine)
        sql, args = r.args(_LOOKUP, {"lo": prefix, "hi": prefix + "g", "holder": holder_key})
        with r.connection() as c:
            rows = c.execute(sql, args).fetchall()
        out = []
        for record_id, dataset, title, version, number, name, status, valid_to, disputed in rows:
            if isinstance(valid_to, str):          # SQLite keeps dates as ISO text
                valid_to = date.fromisoformat(valid_to)
            out.append({"record_id": record_id, "dataset": dataset, "title": title,
                        "version": version, "licence_number": number, "holder_name": name,
                        "status": statuses.standing(status, valid_to, today),
                        "valid_to": valid_to.isoformat() if valid_to else None,
                        "disputed": bool(disputed)})
        return out

    def bundle(self, record_id: str, today: date | None = None) -> dict:
        today = today or clock.today()
        with self.session() as s:
            hit = s.execute(sa.select(Record, DatasetVersion).join(
                DatasetVersion, sa.and_(DatasetVersion.dataset_id == Record.dataset_id,
                                        DatasetVersion.version == Record.version))
                .where(Record.record_id == record_id)
                .order_by(Record.version.desc()).limit(1)).first()
            if hit is None:
                raise NotFound(f"no record {record_id!r}; find record ids with `exchange lookup HOLDER_ID`")
            rec, ver = hit
            st = statuses.record_status(s, record_id, today=today)
        directory = Path(ver.path)
        bundle = make_bundle(
            record_id=record_id, dataset=rec.dataset_id, version=rec.version,
            leaf_index=rec.leaf_index, tree_size=ver.tree_size,
            audit_path=store.inclusion_proof(directory, rec.leaf_index),
            record=store.read_record(directory, rec.leaf_index),
            signed_tree_head=ver.signed_tree_head,
            status=st["status"])
        return label_unsigned({**bundle, "status_since": st["since"], "status_reason": st["reason"]})

    def record_status(self, record_id: str, version: int | None = None,
                      leaf_hash: str | None = None, today: date | None = None) -> dict:
        """valid | expired | revoked | withdrawn | superseded, since when, and the history."""
        with self.session() as s:
            st = statuses.record_status(s, record_id, version, leaf_hash, today)
        if st is None:
            raise NotFound(f"no record {record_id!r}; find record ids with `exchange lookup HOLDER_ID`")
        return st

    def sample_holder(self, dataset: str) -> str | None:
        with self.session() as s:
            return s.scalar(sa.select(Record.holder_key).join(
                Dataset, sa.and_(Dataset.id == Record.dataset_id,
                                 Dataset.current_version == Record.version))
                .where(Record.dataset_id == dataset, Record.status == "valid")
                .order_by(Record.leaf_index).limit(1))

    def runs(self, source_id: str | None = None, limit: int = 20) -> list[dict]:
        with self.session() as s:
            q = sa.select(Run).order_by(Run.id.desc()).limit(limit)
            if source_id:
                q = q.where(Run.source_id == source_id)
            runs = [{c.name: getattr(r, c.name) for c in Run.__table__.columns}
                    for r in s.scalars(q)]
            docs = dict(s.execute(sa.select(RunQuality.run_id, RunQuality.data_docs).where(
                RunQuality.run_id.in_([r["id"] for r in runs]))).all())
            for r in runs:
                r["data_docs"] = docs.get(r["id"])
            return runs

    def audit(self, department: str, purpose: str, action: str, subject: str | None,
              outcome: str, detail: dict | None = None) -> None:
        from catalog import audit   # the hash-chained log (catalog/audit.py)
        audit.append(self.engine, department=department, purpose=purpose, action=action,
                     subject=subject, outcome=outcome, detail=detail,
                     holder=subject if action == "lookup" else None)

    # --- quality gates: quarantine queue, drift, Data Docs, size gate ----------------
    def record_quality(self, run_id: int, **fields) -> None:
        """Upsert what the quality gates saw in a run (catalog.models.RunQuality)."""
        with self.session() as s, s.begin():
            rq = s.get(RunQuality, run_id) or RunQuality(run_id=run_id)
            for k, v in fields.items():
                setattr(rq, k, v)
            s.add(rq)

    def run_quality(self, run_id: int) -> dict:
        with self.session() as s:
            rq = s.get(RunQuality, run_id)
            return {c.name: getattr(rq, c.name) for c in RunQuality.__table__.columns} if rq else {}

    def last_silo_columns(self, source_id: str, before_run: int) -> dict | None:
        with self.session() as s:
            return s.scalar(sa.select(RunQuality.silo_columns).join(Run, Run.id == RunQuality.run_id)
                            .where(Run.source_id == source_id, Run.id < before_run,
                                   RunQuality.silo_columns.is_not(None))
                            .order_by(Run.id.desc()).limit(1))

    def current_size(self, dataset: str) -> int | None:
        """Live records (not withdrawn) of the current version; None before the first."""
        with self.session() as s:
            current = s.scalar(sa.select(Dataset.current_version).where(Dataset.id == dataset))
            if current is None:
                return None
            return s.scalar(sa.select(sa.func.count()).select_from(Record).where(
                Record.dataset_id == dataset, Record.version == current,
                Record.status != statuses.WITHDRAWN))

    def hold_run(self, run_id: int, reason: str) -> None:
        with self.session() as s, s.begin():
            run = s.get(Run, run_id)
            if run.state not in FINAL:
                run.state, run.message, run.finished_at = "held", reason[:2000], utcnow()

    def approve_run(self, source_id: str, run_key: str, by: str, note: str) -> Run:
        """A steward lets a held run publish despite its gate."""
        run = self.get_run(source_id, run_key)
        if run.state != "held":
            raise NotFound(f"run {run_key!r} of {source_id!r} is {run.state}, not held; "
                           "only held runs need approval (see `exchange runs`)")
        self.record_quality(run.id, approved_by=by, approved_at=utcnow(), approval_note=note)
        return run

    def sync_quarantine(self, run_id: int, source_id: str, dataset: str, rows,
                        held: dict[str, str] | None = None) -> dict:
        """This run's quarantined rows (dicts with key, row_hash, reasons, values) into the queue:
        one entry per row, found again next run by (key, row_hash); a key's one row whose content
        changed keeps its key's one entry (and its review). Rows seen again stay (a review is
        kept); entries this run did not quarantine leave. `held`: licence number -> the current
        version's record the row holds back (disputed while the entry is open).
        Bulk statements: a broken export can quarantine a million rows."""
        now, seen, held = utcnow(), {}, held or {}
        for r in rows:
            e = seen.get((r["key"], r.get("row_hash") or ""))
            if e is None:
                seen[(r["key"], r.get("row_hash") or "")] = {**r, "reasons": list(r["reasons"])}
            else:
                e["reasons"] = list(dict.fromkeys([*e["reasons"], *r["reasons"]]))
        T = QuarantineEntry.__table__
        with self.session() as s, s.begin():
            conn = s.connection()
            # reasons compared as the stored JSON text: no decoding of every known entry
            known = {(k, h): (i, r, v, held_id) for k, h, i, r, v, held_id in conn.execute(
                sa.select(T.c.key, T.c.row_hash, T.c.id, sa.cast(T.c.reasons, sa.Text), T.c["values"],
                          T.c.held_record_id).where(T.c.source_id == source_id))}
            match = {kh: kh for kh in seen if kh in known}
            match.update(_changed_rows(seen, known))
            new = [{"source_id": source_id, "dataset_id": dataset, "key": k, "row_hash": h, "state": "open",
                    "reasons": r["reasons"], "values": r["values"], "held_record_id": held.get(k),
                    "first_run_id": run_id, "last_run_id": run_id, "first_seen": now, "last_seen": now}
                   for (k, h), r in seen.items() if (k, h) not in match]
            again = [known[match[kh]][0] for kh in seen if kh in match]
            changed = [{"b_id": known[match[kh]][0], "row_hash": kh[1], "reasons": r["reasons"],
                        "values": r["values"], "held_record_id": held.get(kh[0])}
                       for kh, r in seen.items() if kh in match
                       and (match[kh] != kh or (json.dumps(r["reasons"]), r["values"], held.get(kh[0]))
                            != known[kh][1:])]
            if new:
                _executemany(conn, sa.insert(T), new)
            if changed:          # only rows whose content, reasons, values or hold differ are rewritten
                conn.execute(T.update().where(T.c.id == sa.bindparam("b_id")).values(
                    row_hash=sa.bindparam("row_hash"), reasons=sa.bindparam("reasons"),
                    values=sa.bindparam("values"), held_record_id=sa.bindparam("held_record_id")), changed)
            for at in range(0, len(again), 500):     # seen again: one statement per 500 ids
                conn.execute(T.update().where(T.c.id.in_(again[at:at + 500]))
                             .values(last_run_id=run_id, last_seen=now))
            if again:
                conn.execute(T.update().where(T.c.source_id == source_id, T.c.last_run_id == run_id,
                                              T.c.state == "resolved")
                             .values(state="open", resolved_run_id=None, resolved_at=None))
            resolved = conn.execute(T.update().where(
                T.c.source_id == source_id, T.c.last_run_id != run_id, T.c.state != "resolved")
                .values(state="resolved", resolved_run_id=run_id, resolved_at=now,
                        held_record_id=None)).rowcount
        return {"new": len(new), "still": len(again), "resolved": resolved}

    def quarantine(self, dataset: str, include_resolved: bool = False) -> list[dict]:
        """The queue; `last_run_key` names the run whose quarantine file holds the raw row."""
        with self.session() as s:
            q = (sa.select(QuarantineEntry, Run.run_key)
                 .join(Run, Run.id == QuarantineEntry.last_run_id)
                 .where(QuarantineEntry.dataset_id == dataset))
            if not include_resolved:
                q = q.where(QuarantineEntry.state != "resolved")
            return [{**{c.name: getattr(e, c.name) for c in QuarantineEntry.__table__.columns},
                     "last_run_key": key} for e, key in s.execute(q.order_by(QuarantineEntry.id))]

    def quarantine_summary(self, dataset: str, sample: int = 20) -> dict:
        """The queue in brief: entries by state and by reason (unresolved), how many open ones
        hold a published record back (disputed), and the open entries, those first, then the
        oldest. Streams the reasons column: a broken export can quarantine a million rows."""
        T = QuarantineEntry.__table__
        with self.session() as s:
            states = dict(s.execute(sa.select(T.c.state, sa.func.count()).where(T.c.dataset_id == dataset)
                                    .group_by(T.c.state)).all())
            reasons: dict[str, int] = {}
            for (rs,) in s.execute(sa.select(T.c.reasons).where(T.c.dataset_id == dataset,
                                                               T.c.state != "resolved")
                                   .execution_options(yield_per=10_000)):
                for r in rs or ():
                    reasons[r] = reasons.get(r, 0) + 1
            holding = s.scalar(sa.select(sa.func.count()).where(
                T.c.dataset_id == dataset, T.c.state == "open", T.c.held_record_id.is_not(None)))
            rows = s.execute(sa.select(T.c.key, T.c.row_hash, T.c.reasons, T.c["values"], T.c.first_seen,
                                       T.c.last_seen, T.c.held_record_id.label("holds_record"),
                                       Run.run_key).join(Run, Run.id == T.c.last_run_id)
                             .where(T.c.dataset_id == dataset, T.c.state == "open")
                             .order_by(T.c.held_record_id.is_(None), T.c.id).limit(sample)).mappings().all()
        return {"states": states, "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
                "holding": holding or 0, "open": [dict(r) for r in rows]}

    def review_quarantine(self, dataset: str, key: str, by: str, note: str,
                          row_hash: str | None = None) -> dict:
        """A steward's review of the rows quarantined under `key` (all of them, or the one whose
        row hash starts with `row_hash`); a record they held back is no longer disputed."""
        with self.session() as s, s.begin():
            q = sa.select(QuarantineEntry).where(QuarantineEntry.dataset_id == dataset,
                                                 QuarantineEntry.key == key)
            if row_hash:
                q = q.where(QuarantineEntry.row_hash.startswith(row_hash, autoescape=True))
            entries = s.scalars(q.order_by(QuarantineEntry.id)).all()
            if not entries:
                raise NotFound(f"no quarantined row {key!r}{f' with row hash {row_hash}…' if row_hash else ''} "
                               f"in {dataset!r}; list them with `exchange quarantine {dataset}`")
            now = utcnow()
            for e in entries:
                if e.state == "open":
                    e.state = "reviewed"
                e.reviewed_by, e.review_note, e.reviewed_at = by, note, now
            states = {e.state for e in entries}
            return {"dataset": dataset, "key": key, "state": states.pop() if len(states) == 1 else "reviewed",
                    "reviewed_by": by, "review_note": note, "entries": len(entries),
                    "row_hashes": [e.row_hash for e in entries]}


    # --- alerts: what operators were told (exchange/alerts) -------------------------------
    FRESHNESS_ALERTS = ("late", "stale", "recovered")

    def record_alert(self, alert: dict, delivered: list[dict] | None = None) -> int:
        with self.session() as s, s.begin():
            row = AlertRow(at=alert.get("at") or utcnow(), kind=alert["kind"],
                           dataset_id=alert.get("dataset"), source_id=alert.get("source"),
                           dag_id=alert.get("dag_id"), dag_run_id=alert.get("run_id"),
                           task_id=alert.get("task"), state=alert.get("state"),
                           message=alert.get("message") or "", delivered=delivered)
            s.add(row)
            s.flush()
            return row.id

    def alerts(self, limit: int = 50, dataset: str | None = None) -> list[dict]:
        with self.session() as s:
            q = sa.select(AlertRow).order_by(AlertRow.id.desc()).limit(limit)
            if dataset:
                q = q.where(AlertRow.dataset_id == dataset)
            return [{c.name: getattr(a, c.name) for c in AlertRow.__table__.columns}
                    for a in s.scalars(q)]

    def said_freshness(self) -> dict[str, str]:
        """Per dataset, the last freshness alert said (late, stale or recovered)."""
        with self.session() as s:
            newest = (sa.select(sa.func.max(AlertRow.id))
                      .where(AlertRow.kind.in_(self.FRESHNESS_ALERTS)).group_by(AlertRow.dataset_id))
            return dict(s.execute(sa.select(AlertRow.dataset_id, AlertRow.kind)
                                  .where(AlertRow.id.in_(newest))).all())


def _changed_rows(seen: dict, known: dict) -> dict:
    """(key, row_hash) of this run -> the known entry it continues though its content changed:
    where a key has exactly one unmatched row and one unmatched entry (a fixed typo keeps its
    review; entries kept from before migration 0011 have row_hash '')."""
    rows, entries = defaultdict(list), defaultdict(list)
    for kh in seen:
        if kh not in known:
            rows[kh[0]].append(kh)
    for kh in known:
        if kh not in seen and kh[0] in rows:
            entries[kh[0]].append(kh)
    return {rows[k][0]: entries[k][0] for k in entries if len(rows[k]) == len(entries[k]) == 1}


def _executemany(conn, stmt, rows: list[dict]) -> None:
    """Many rows through the driver's executemany, values converted by the columns' own
    SQLAlchemy types once each (per-row statement compilation would dominate)."""
    cols = list(rows[0])
    table = stmt.table
    compiled = stmt.values({c: sa.bindparam(c) for c in cols}).compile(dialect=conn.dialect)
    order = list(compiled.positiontup) if compiled.positional else cols
    procs = [table.c[c].type.dialect_impl(conn.dialect).bind_processor(conn.dialect) for c in order]
    for n, c in enumerate(order):        # one value in every row (a run id, a time): processed once
        first = rows[0][c]
        if procs[n] and all(r[c] is first for r in rows):
            done = procs[n](first)
            procs[n] = lambda _v, done=done: done
    out = [tuple(p(r[c]) if p else r[c] for c, p in zip(order, procs)) for r in rows]
    conn.exec_driver_sql(str(compiled), out if compiled.positional else
                         [dict(zip(order, r)) for r in out])


def _insert_index(loader: index_load.IndexLoader, dataset: str, version: int, index_path: Path) -> None:
    """The version's index rows into `records`, in bulk, in the publishing transaction
    (catalog/index_load.py: ADBC and ATTACH on SQLite, COPY on PostgreSQL)."""
    loader.load(index_path, dataset, version)


_r = Record.__table__.c
_q = QuarantineEntry.__table__.c
_DISPUTED = sa.exists().where(_q.held_record_id == _r.record_id,   # catalog.status.dispute
                               _q.state == sa.literal_column("'open'"))   # no parameter: rawdb
_LOOKUP = (sa.select(_r.record_id, _r.dataset_id, Dataset.title, _r.version, _r.licence_number,
                     _r.holder_name, _r.status, _r.valid_to, _DISPUTED.label("disputed"))
           .join(Dataset, sa.and_(Dataset.id == _r.dataset_id, Dataset.current_version == _r.version))
           .where(_r.record_id >= sa.bindparam("lo"), _r.record_id < sa.bindparam("hi"),
                  _r.holder_key == sa.bindparam("holder"))
           .order_by(_r.dataset_id, _r.licence_number))   # a holder's records: a primary-key range


def _holder_range(holder_key: str):
    """A holder's records share a record-id prefix: a range on the primary key."""
    prefix = store.holder_prefix(holder_key)
    return Record.record_id >= prefix, Record.record_id < prefix + "g"   # 'g' sorts after hex


def _jsonable(d: dict) -> dict:
    import json
    return json.loads(json.dumps(d, default=str))
