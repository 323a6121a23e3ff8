"""The run ledger: runs and their owners, pull state (watermarks, files taken), quality gates
(the quarantine queue, run quality, approvals) and the alerts operators were told. DAG tasks,
the CLI and the dashboard write and read runs through here; publishing a version (which ends a
run in the same transaction) is catalog.service.Catalog.publish."""
from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.orm import Session

from base import clock
from base.errors import NotFound
from catalog.db.engine import engine_for
from catalog.db.models import Alert as AlertRow
from catalog.db.models import QuarantineEntry, Run, RunQuality, TakenFile, Watermark
from catalog.ledger import quarantine, run_owner

FINAL = ("published", "unchanged")


def utcnow():
    return clock.now()


class Ledger:
    def __init__(self, url: str, *, pre_ping: bool = True):
        self.engine = engine_for(url, pre_ping)

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # --- runs ----------------------------------------------------------------------------------
    def start_run(self, source_id: str, run_key: str, dag_run_id: str | None = None) -> Run:
        """The run, running (made if new); its owner is this process inside run_owner.owning()
        (`exchange run`, `approve`), else none (Airflow). Other runs of the source whose owner
        is gone are failed first."""
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
                       f"the run was published. Run it again (`exchange run {source} --local --key {key}`)")
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

    # --- pull state (connectors/state.py): advanced only after a publish -----------------------
    def watermark(self, source_id: str) -> tuple[str, str] | None:
        """(column, value) of the source's committed watermark, if any."""
        with self.session() as s:
            w = s.get(Watermark, source_id)
            return (w.column, w.value) if w else None

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

    def runs(self, source_id: str | None = None, limit: int = 20) -> list[dict]:
        with self.session() as s:
            q = sa.select(Run).order_by(Run.id.desc()).limit(limit)
            if source_id:
                q = q.where(Run.source_id == source_id)
            runs = [{c.name: getattr(r, c.name) for c in Run.__table__.columns}
                    for r in s.scalars(q)]
            quality = {i: (d, c) for i, d, c in s.execute(
                sa.select(RunQuality.run_id, RunQuality.data_docs, RunQuality.change_detection).where(
                    RunQuality.run_id.in_([r["id"] for r in runs]))).all()}
            for r in runs:
                r["data_docs"], detected = quality.get(r["id"], (None, None))
                r["checked"] = (detected or {}).get("checked")      # rows conformed and validated
                r["carried"] = (detected or {}).get("carried")      # rows carried over unchanged
            return runs

    # --- quality gates: quarantine queue, drift, Data Docs, size gate --------------------------
    def record_quality(self, run_id: int, **fields) -> None:
        """Upsert what the quality gates saw in a run (catalog.db.models.RunQuality)."""
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
                        held: dict[str, str] | None = None, scope: set[str] | None = None) -> dict:
        """This run's quarantined rows (dicts with key, row_hash, reasons, values) into the queue:
        one entry per row, found again next run by (key, row_hash); a key's one row whose content
        changed keeps its key's one entry (and its review). Rows seen again stay (a review is
        kept); entries this run did not quarantine leave. `held`: licence number -> the current
        version's record the row holds back (disputed while the entry is open). `scope` (a delta
        run's, exchange/unreported.py): only the entries of these keys, of the rows' keys and of
        hashed keys (rows without a licence number) are settled; the others are left as they are
        (their rows quarantined unchanged and not reported again). None: every entry of the source.
        Bulk statements: a broken export can quarantine a million rows."""
        now, seen, held = utcnow(), {}, held or {}
        for r in rows:                 # the rows are not changed: a merged one is a copy
            kh = (r["key"], r.get("row_hash") or "")
            e = seen.get(kh)
            seen[kh] = r if e is None else {**e, "reasons": list(dict.fromkeys([*e["reasons"], *r["reasons"]]))}
        T = QuarantineEntry.__table__
        with self.session() as s, s.begin():
            conn = s.connection()
            # reasons compared as the stored JSON text: no decoding of every known entry
            known, closed = {}, set()          # closed: the resolved entries' ids
            for k, h, i, r, v, held_id, state in quarantine.entries(conn, T, source_id, scope, seen):
                known[(k, h)] = (i, r, v, held_id)
                if state == "resolved":
                    closed.add(i)
            match = {kh: kh for kh in seen if kh in known}
            match.update(quarantine.changed_rows(seen, known))
            new = [{"source_id": source_id, "dataset_id": dataset, "key": k, "row_hash": h, "state": "open",
                    "reasons": r["reasons"], "values": r["values"], "held_record_id": held.get(k),
                    "first_run_id": run_id, "last_run_id": run_id, "first_seen": now, "last_seen": now}
                   for (k, h), r in seen.items() if (k, h) not in match]
            again = [known[match[kh]][0] for kh in seen if kh in match]
            text: dict[tuple, str] = {}        # reasons as stored JSON, once per distinct list

            def as_text(reasons: list) -> str:
                t = tuple(reasons)
                return text[t] if t in text else text.setdefault(t, json.dumps(reasons))
            changed = [{"b_id": known[match[kh]][0], "row_hash": kh[1], "reasons": r["reasons"],
                        "values": r["values"], "held_record_id": held.get(kh[0])}
                       for kh, r in seen.items() if kh in match
                       and (match[kh] != kh or (as_text(r["reasons"]), r["values"], held.get(kh[0]))
                            != known[kh][1:])]
            quarantine.seen_again(conn, T, source_id, again, [e[0] for e in known.values()], closed,
                                  scope is not None, last_run_id=run_id, last_seen=now)
            if new:
                quarantine.executemany(conn, sa.insert(T), new)
            if changed:          # only rows whose content, reasons, values or hold differ are rewritten
                conn.execute(T.update().where(T.c.id == sa.bindparam("b_id")).values(
                    row_hash=sa.bindparam("row_hash"), reasons=sa.bindparam("reasons"),
                    values=sa.bindparam("values"), held_record_id=sa.bindparam("held_record_id")), changed)
            reopen = dict(state="open", resolved_run_id=None, resolved_at=None)
            if again and scope is None:
                conn.execute(T.update().where(T.c.source_id == source_id, T.c.last_run_id == run_id,
                                              T.c.state == "resolved").values(**reopen))
            elif again:          # the resolved entries seen again, by id
                ids = sorted(closed.intersection(again))
                for at in range(0, len(ids), 500):
                    conn.execute(T.update().where(T.c.id.in_(ids[at:at + 500])).values(**reopen))
            gone = dict(state="resolved", resolved_run_id=run_id, resolved_at=now, held_record_id=None)
            if scope is None:
                resolved = conn.execute(T.update().where(
                    T.c.source_id == source_id, T.c.last_run_id != run_id, T.c.state != "resolved")
                    .values(**gone)).rowcount
            else:            # the scope's entries not seen again
                left = sorted(set(e[0] for e in known.values()).difference(again, closed))
                resolved = sum(conn.execute(T.update().where(T.c.id.in_(left[at:at + 500]))
                                            .values(**gone)).rowcount for at in range(0, len(left), 500))
        return {"new": len(new), "still": len(again), "resolved": resolved}

    def unsettled_keys(self, source_id: str, run_id: int) -> set[str]:
        """Keys of the source's queue entries that a run after its last published (or
        unchanged) one wrote or resolved: a failed or held run, or this run `run_id` before
        (run again). The row state is the last published run's: these keys' rows are reported."""
        with self.session() as s:
            last = s.scalar(sa.select(sa.func.max(Run.id)).where(
                Run.source_id == source_id, Run.state.in_(FINAL), Run.id < run_id)) or 0
            since = s.scalar(sa.select(sa.func.count()).where(
                Run.source_id == source_id, Run.id > last, Run.quarantined.is_not(None)))
            if not since:               # no run since has synced the queue: nothing to look up
                return set()
            T = QuarantineEntry.__table__
            return set(s.scalars(sa.select(T.c.key).distinct().where(
                T.c.source_id == source_id, sa.or_(T.c.last_run_id > last, T.c.resolved_run_id > last))))

    def quarantine(self, dataset: str, include_resolved: bool = False) -> list[dict]:
        """The queue; `last_run_key` names the run whose quarantine file holds the raw row (the
        run that last reported it: a delta run does not report a row quarantined unchanged), and
        an unresolved entry's `seen_as_of_run_key` the source's latest run that synced the
        queue: the row was still quarantined then (its `last_seen` is when it was last reported)."""
        with self.session() as s:
            q = (sa.select(QuarantineEntry, Run.run_key)
                 .join(Run, Run.id == QuarantineEntry.last_run_id)
                 .where(QuarantineEntry.dataset_id == dataset))
            if not include_resolved:
                q = q.where(QuarantineEntry.state != "resolved")
            entries = [{**{c.name: getattr(e, c.name) for c in QuarantineEntry.__table__.columns},
                        "last_run_key": key} for e, key in s.execute(q.order_by(QuarantineEntry.id))]
            latest = self._latest_synced(s, {e["source_id"] for e in entries})
        for e in entries:
            e["seen_as_of_run_key"] = None if e["state"] == "resolved" else latest.get(e["source_id"])
        return entries

    @staticmethod
    def _latest_synced(s, sources) -> dict[str, str]:
        """source -> the run key of its latest run that synced the quarantine queue."""
        newest = (sa.select(sa.func.max(Run.id)).where(Run.source_id.in_(sorted(sources)),
                                                       Run.quarantined.is_not(None)).group_by(Run.source_id))
        return dict(s.execute(sa.select(Run.source_id, Run.run_key).where(Run.id.in_(newest))).all())

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
                                       Run.run_key, T.c.source_id).join(Run, Run.id == T.c.last_run_id)
                             .where(T.c.dataset_id == dataset, T.c.state == "open")
                             .order_by(T.c.held_record_id.is_(None), T.c.id).limit(sample)).mappings().all()
            sources = s.scalars(sa.select(T.c.source_id).distinct().where(T.c.dataset_id == dataset,
                                                                          T.c.state != "resolved")).all()
            latest = self._latest_synced(s, set(sources))
        # run_key: the run that last reported the row (its file holds the raw row); seen_as_of:
        # the source's latest run that synced the queue, which still quarantined it
        return {"states": states, "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
                "holding": holding or 0, "open": [{**r, "seen_as_of": latest.get(r["source_id"])} for r in rows],
                "as_of": latest}

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

    # --- alerts: what operators were told (exchange/alerts) ------------------------------------
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

    def alerted(self, kind: str, source_id: str, run_id: str) -> bool:
        """Whether an alert of `kind` was already recorded for this run of the source (its
        Airflow run id, or the run key of a run outside Airflow): each event is said once."""
        with self.session() as s:
            return s.scalar(sa.select(AlertRow.id).where(AlertRow.kind == kind, AlertRow.source_id == source_id,
                                                         AlertRow.dag_run_id == run_id).limit(1)) is not None

    def last_ended_run(self, source_id: str, before_run: int) -> Run | None:
        """The source's latest run before `before_run` that ended, failed or refreshed (held and
        running runs aside)."""
        with self.session() as s:
            return s.scalar(sa.select(Run).where(Run.source_id == source_id, Run.id < before_run,
                                                 Run.state.in_(("failed", *FINAL)))
                            .order_by(Run.id.desc()).limit(1))

    def said_freshness(self) -> dict[str, str]:
        """Per dataset, the last freshness alert said (late, stale or recovered)."""
        with self.session() as s:
            newest = (sa.select(sa.func.max(AlertRow.id))
                      .where(AlertRow.kind.in_(self.FRESHNESS_ALERTS)).group_by(AlertRow.dataset_id))
            return dict(s.execute(sa.select(AlertRow.dataset_id, AlertRow.kind)
                                  .where(AlertRow.id.in_(newest))).all())
