"""What a consuming department may ask, each answer audited (allowed or refused).

The API routes and the CLI call these; access rules are in catalog/serving/access.py, the audit chain
in catalog/serving/audit.py, the catalogue reads in catalog/service.py.
"""
from __future__ import annotations

import re
from contextvars import ContextVar
from datetime import UTC, date, datetime

import sqlalchemy as sa

from base import clock
from base.errors import AccessDenied, ExchangeError, InvalidRequest, NotFound
from catalog.db.models import Dataset, DatasetVersion, Record
from catalog.federation import access_reports
from catalog.ledger.monitoring import freshness
from catalog.service import Catalog
from catalog.serving import audit, objections
from catalog.serving.access import STATUS_SOURCES, Access, Caller, check_purpose, disclose
from catalog.serving.holders import holder_key, record_id_ok
from catalog.serving.materials import check_materials

PENDING: ContextVar[list | None] = ContextVar("pending_audit", default=None)
SUMMARY_FIELDS = ("licence_number", "holder_name", "valid_to")
REPORTED = frozenset({"lookup", "bundle", "status", "materials"})   # owed to a mirrored dataset's origin


def _shown(key: str, fields: frozenset[str]) -> bool:
    """A lookup's summary key under a partial grant: its own field granted; the status only when
    the grant covers both the record's status and valid_to (an expired status tells valid_to)."""
    if key == "status":
        return STATUS_SOURCES <= fields
    return key not in SUMMARY_FIELDS or key in fields


class Consumer:
    """`operator`: who is at the terminal when the CLI asks for a department (its OS account
    and host); written into every audit entry's detail with `via: cli`. None for the API."""

    def __init__(self, catalog: Catalog, access: Access, operator: str | None = None):
        self.catalog, self.access, self.engine = catalog, access, catalog.engine
        self.operator = operator

    def mirrors(self) -> dict[str, str]:
        """Mirrored dataset -> its origin peer (the access rules' cache)."""
        return self.access.mirrors()

    def _audit(self, caller: Caller | None, purpose: str, action: str, outcome: str,
               records: list[tuple[str, str]] | None = None, **kw) -> None:
        if self.operator is not None:
            kw["detail"] = {**(kw.get("detail") or {}), "via": "cli", "operator": self.operator}
        row = audit.entry(department=caller.department if caller else "-", purpose=purpose or "-",
                          action=action, outcome=outcome, **kw)
        if outcome == "allowed" and action in REPORTED and caller is not None and kw.get("datasets") \
                and (mirrors := self.mirrors()):
            reports = access_reports.reports_for(
                mirrors, at=row["at"], department=caller.department, purpose=row["purpose"], action=action,
                holder=kw.get("holder"), datasets=kw["datasets"],
                records=records if records is not None else
                [(d, kw["subject"]) for d in kw["datasets"]] if kw.get("subject") and action != "materials" else [])
            if reports:
                row[access_reports.ROW_KEY] = reports
        pending = PENDING.get()
        if pending is None:
            audit.append_many(self.engine, [row])
            access_reports.enqueue_from(self.engine, [row])
        else:       # the API writes it (group commit) before the response starts, then queues its reports
            pending.append(row)

    def refused(self, caller: Caller | None, purpose: str | None, action: str, exc: ExchangeError,
                **kw) -> None:
        """Audit a refusal (the API calls this for every refused request)."""
        self._audit(caller, (purpose or "-")[:255], action, f"refused:{exc.status}",
                    detail={"reason": str(exc)[:300]}, **kw)
        exc.audited = True

    # --- holders --------------------------------------------------------------------------
    def lookup(self, caller: Caller, purpose: str, holder_id: str, today: date | None = None) -> dict:
        check_purpose(purpose)
        key = holder_key(holder_id)
        out, seen = [], {}
        for r in self.catalog.lookup(key, today):
            d = self.access.decide(caller.department, r["dataset"], purpose)
            if not d.allowed:
                continue          # datasets the caller may not see are not even mentioned
            seen[r["dataset"]] = seen.get(r["dataset"], 0) + 1
            out.append({k: v for k, v in r.items() if d.fields is None or _shown(k, d.fields)})
        self._audit(caller, purpose, "lookup", "allowed", holder=key, datasets=sorted(seen),
                    detail={"records": len(out), "by_dataset": seen},
                    records=[(r["dataset"], r["record_id"]) for r in out if "record_id" in r])
        return {"holder": key, "records": out}

    def _record_dataset(self, record_id: str) -> tuple[str, str]:
        with self.engine.connect() as c:
            hit = c.execute(sa.select(Record.dataset_id, Record.holder_key)
                            .where(Record.record_id == record_id)
                            .order_by(Record.version.desc()).limit(1)).first()
        if hit is None:
            raise NotFound(f"未找到记录 (no record): {record_id}; find record ids with a holder lookup")
        return hit[0], hit[1]

    def bundle(self, caller: Caller, purpose: str, record_id: str) -> dict:
        check_purpose(purpose)
        record_id_ok(record_id)
        dataset, holder = self._record_dataset(record_id)
        try:
            d = self.access.require(caller.department, dataset, purpose)
        except AccessDenied as exc:
            self.refused(caller, purpose, "bundle", exc, holder=holder, datasets=[dataset], subject=record_id)
            raise
        b = disclose(self.catalog.bundle(record_id), d.fields)
        self._audit(caller, purpose, "bundle", "allowed", holder=holder, datasets=[dataset],
                    fields=sorted(b["record"]) if not b["verifiable"] else None, subject=record_id)
        return b

    def status(self, caller: Caller, purpose: str, record_id: str, version: int | None = None,
               leaf_hash: str | None = None) -> dict:
        check_purpose(purpose)
        record_id_ok(record_id)
        if leaf_hash is not None and not re.fullmatch(r"[0-9a-f]{64}", leaf_hash):
            raise InvalidRequest("叶哈希无效 (bad leaf_hash): leaf_hash is 64 lower-case hex characters")
        dataset, holder = self._record_dataset(record_id)
        try:
            d = self.access.require(caller.department, dataset, purpose)
            if d.fields is not None and not STATUS_SOURCES <= d.fields:
                raise AccessDenied(
                    f"授权不含状态字段 (grant lacks status fields): the grant of {caller.department} on {dataset} "
                    "does not cover the record's "
                    f"{' and '.join(sorted(STATUS_SOURCES - d.fields))} (a status tells both); ask the "
                    "dataset's steward for a grant that includes status and valid_to")
        except AccessDenied as exc:
            self.refused(caller, purpose, "status", exc, holder=holder, datasets=[dataset], subject=record_id)
            raise
        st = self.catalog.record_status(record_id, version, leaf_hash)
        self._audit(caller, purpose, "status", "allowed", holder=holder, datasets=[dataset], subject=record_id)
        return {"record_id": record_id, **st}

    # --- objections (数据异议) ---------------------------------------------------------------
    def file_objection(self, caller: Caller, purpose: str, record_id: str, reason: str,
                       evidence: str | None = None) -> dict:
        """The caller's objection to a record it may see for `purpose` (catalog/serving/objections.py)."""
        check_purpose(purpose)
        dataset, holder, _, _ = objections.record_of(self.engine, record_id)
        try:
            o = objections.file(self.engine, self.access, caller, purpose, record_id, reason, evidence)
        except AccessDenied as exc:
            self.refused(caller, purpose, "objection", exc, holder=holder, datasets=[dataset], subject=record_id)
            raise
        self._audit(caller, purpose, "objection", "allowed", holder=holder, datasets=[dataset],
                    subject=record_id, detail={"objection": o["id"], "due_at": o["due_at"]})
        return o

    def objection(self, caller: Caller, purpose: str, objection_id: int) -> dict:
        """One of the caller's own objections (another department's: NotFound)."""
        check_purpose(purpose)
        o = objections.get_for(self.engine, objection_id, caller.department)
        self._audit(caller, purpose, "objection_read", "allowed", datasets=[o["dataset"]],
                    subject=str(objection_id))
        return o

    # --- materials check ------------------------------------------------------------------
    def materials(self, caller: Caller, purpose: str, item_code: str, holder_id: str,
                  others: dict[str, str] | None = None, today: date | None = None) -> dict:
        check_purpose(purpose)
        answer, audited = check_materials(self.access, self.catalog, caller, purpose, item_code,
                                          holder_id, others or {}, today)
        self._audit(caller, purpose, "materials", "allowed", **audited)
        return answer

    # --- catalogue ------------------------------------------------------------------------
    def datasets(self, caller: Caller, purpose: str, now: datetime | None = None) -> list[dict]:
        check_purpose(purpose)
        now = now or clock.now()
        with self.catalog.session() as c:
            rows = c.execute(sa.select(Dataset, DatasetVersion.published_at,
                                       sa.func.coalesce(DatasetVersion.record_count, DatasetVersion.tree_size),
                                       DatasetVersion.root_hash).outerjoin(
                DatasetVersion, sa.and_(DatasetVersion.dataset_id == Dataset.id,
                                        DatasetVersion.version == Dataset.current_version))
                .order_by(Dataset.id)).all()
        fresh = {f["dataset"]: f for f in freshness(self.catalog, now)}
        out = []
        for ds, published, size, root in rows:
            age = None
            if published is not None:
                published = published if published.tzinfo else published.replace(tzinfo=UTC)
                age = (now - published).total_seconds() / 86400
            f = fresh.get(ds.id, {})
            out.append({"dataset": ds.id, "title": ds.title, "certificate_type": ds.certificate_type,
                        "type_version": ds.type_version, "department": ds.department,
                        "sharing": ds.sharing, "steward": ds.steward, "update_cycle": ds.update_cycle,
                        "version": ds.current_version, "records": size or 0, "root_hash": root,
                        "published_at": published.isoformat() if published else None,
                        "age_days": round(age, 3) if age is not None else None,
                        "freshness": f.get("state", "never"), "last_refresh": f.get("last_refresh"),
                        "due_at": f.get("due_at"), "fresh": f.get("state") == "fresh"})
        self._audit(caller, purpose, "catalogue", "allowed")
        return out

    # --- access report --------------------------------------------------------------------
    def access_report(self, caller: Caller, purpose: str, holder_id: str,
                      limit: int = audit.REPORT_LIMIT, before: int | None = None) -> dict:
        """A page of the holder's accesses, newest first; `more`: older ones remain (ask again
        with before = next_before)."""
        check_purpose(purpose)
        key = holder_key(holder_id)
        if caller.role != "auditor":
            exc = AccessDenied("仅审计部门可查看访问报告 (auditors only): only an auditor department may read "
                               "access reports")
            self.refused(caller, purpose, "access_report", exc, holder=key)
            raise exc
        rows, more = audit.holder_report(self.engine, key, limit, before)
        self._audit(caller, purpose, "access_report", "allowed", holder=key,
                    detail={"before": before} if before else None)
        return {"holder": key, "accesses": rows, "more": more,
                "next_before": rows[-1]["seq"] if more else None}
