"""The origin side of federation: what a peer exchange department may mirror, and the versions
and files it mirrors them from (served at /v1/federation/*; audited by the caller,
catalog/serving/federation.py).

A peer may mirror this exchange's own datasets only (a dataset with a `mirrors` row came from
elsewhere: never served on, no transitive mirrors): unconditional ones freely, conditional
ones under an agreement (a current grant to the peer's department with purposes holding
"mirror" and every field), not_shared ones never."""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime

import sqlalchemy as sa

from base import clock
from base.errors import AccessDenied, InvalidRequest, NotFound
from base.settings import get_settings
from catalog.db.models import Dataset, DatasetVersion, Grant, Mirror
from catalog.service import Catalog

MIRROR_PURPOSE = "mirror"
FILES = {"records.parquet": "records.parquet", "holders.parquet": "index.parquet"}
CHUNK = 1 << 20
META = ("dataset", "title", "certificate_type", "type_version", "department", "department_name",
        "sharing", "update_cycle", "steward", "description", "version", "log_from", "tree_size")
REPORT_KEYS = ("id", "at", "department", "purpose", "action", "holder", "datasets", "records")


def _aware(t: datetime | None) -> datetime | None:
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


class Origin:
    def __init__(self, catalog: Catalog, log_origin: str | None = None):
        self.catalog, self.engine = catalog, catalog.engine
        self.log_origin = log_origin         # this exchange's name; None: the process's settings
        self._digests: dict[tuple[str, int, str], str] = {}      # versions never change

    # --- who may mirror what ------------------------------------------------------------
    def _agreed(self, department: str, now: datetime) -> set[str]:
        g = Grant.__table__.c
        with self.engine.connect() as c:
            rows = c.execute(sa.select(g.dataset_id, g.purposes, g.fields, g.expires_at)
                             .where(g.department_id == department, g.revoked_at.is_(None))).all()
        return {d for d, purposes, fields, expires in rows
                if MIRROR_PURPOSE in (purposes or []) and fields is None and _aware(expires) > now}

    def _refusal(self, department: str, ds: Dataset | None, mirrored: bool, agreed: set[str],
                 dataset: str) -> str | None:
        if ds is None:
            return None         # NotFound, not a refusal
        if mirrored:
            return (f"镜像数据集不再转供 (a mirrored dataset): {dataset} is mirrored here from another exchange; "
                    "mirror it from its origin (no transitive mirrors)")
        if ds.sharing == "not_shared":
            return f"不予共享 (not shared): dataset {dataset} never leaves this exchange"
        if ds.sharing == "conditional" and dataset not in agreed:
            return (f"有条件共享，无共享协议 (conditional, no agreement): dataset {dataset} is shared on condition; "
                    f"peer exchange department {department} has no current agreement (a grant with purpose "
                    f"mirror on every field); ask this exchange's operator: "
                    f"`exchange agreements add {department} {dataset}`")
        return None

    def require(self, department: str, dataset: str, now: datetime | None = None) -> Dataset:
        """The dataset row if `department` may mirror it; NotFound / AccessDenied naming the rule."""
        with self.catalog.session() as s:
            ds = s.get(Dataset, dataset)
            mirrored = s.scalar(sa.select(Mirror.dataset_id).where(Mirror.dataset_id == dataset)) is not None
            if ds is not None:
                s.expunge(ds)
        if ds is None:
            raise NotFound(f"未找到数据集 (no dataset): {dataset!r} is not published by this exchange")
        why = self._refusal(department, ds, mirrored, self._agreed(department, now or clock.now()), dataset)
        if why:
            raise AccessDenied(why)
        return ds

    def may_mirror(self, department: str, datasets: list[str], now: datetime | None = None) -> set[str]:
        """Those of `datasets` the department may mirror."""
        out = set()
        for d in set(datasets):
            try:
                self.require(department, d, now)
            except (NotFound, AccessDenied):
                continue
            out.add(d)
        return out

    # --- reading ------------------------------------------------------------------------
    def datasets(self, department: str, now: datetime | None = None) -> dict:
        agreed = self._agreed(department, now or clock.now())
        with self.catalog.session() as s:
            mirrored = set(s.scalars(sa.select(Mirror.dataset_id)))
            rows = s.execute(sa.select(Dataset, DatasetVersion.tree_size).join(
                DatasetVersion, sa.and_(DatasetVersion.dataset_id == Dataset.id,
                                        DatasetVersion.version == Dataset.current_version))
                .order_by(Dataset.id)).all()
            out = [{"dataset": ds.id, "title": ds.title, "certificate_type": ds.certificate_type,
                    "type_version": ds.type_version, "department": ds.department,
                    "department_name": ds.department_name, "sharing": ds.sharing,
                    "update_cycle": ds.update_cycle, "steward": ds.steward, "description": ds.description,
                    "version": ds.current_version, "log_from": ds.log_from, "tree_size": size}
                   for ds, size in rows
                   if self._refusal(department, ds, ds.id in mirrored, agreed, ds.id) is None]
        return {"exchange": self.log_origin or get_settings().log_origin, "datasets": out}

    def _version(self, dataset: str, version: int) -> DatasetVersion:
        with self.catalog.session() as s:
            ds = s.get(Dataset, dataset)
            v = s.get(DatasetVersion, (dataset, version))
            log_from = ds.log_from if ds is not None else None
            if v is not None:
                s.expunge(v)
        if v is None or v.first_leaf is None or (log_from is not None and version < log_from):
            raise NotFound(f"没有该版本 (no such version): dataset {dataset} has no version {version} on its "
                           f"log (the log starts at version {log_from or '(none yet)'})")
        return v

    def _digest(self, v: DatasetVersion, name: str) -> str:
        key = (v.dataset_id, v.version, name)
        if key not in self._digests:
            h = hashlib.sha256()
            for chunk in self.stream(v.dataset_id, v.version, name, checked=v):
                h.update(chunk)
            self._digests[key] = h.hexdigest()
        return self._digests[key]

    def version(self, dataset: str, version: int) -> dict:
        v = self._version(dataset, version)
        return {"dataset": dataset, "version": version, "first_leaf": v.first_leaf, "tree_size": v.tree_size,
                "record_count": v.record_count, "signed_tree_head": v.signed_tree_head,
                "checkpoint": v.checkpoint, "head_hash": v.head_hash,
                "previous_head_hash": v.previous_head_hash,
                "records_sha256": self._digest(v, "records.parquet"),
                "holders_sha256": self._digest(v, "holders.parquet")}

    def file_size(self, dataset: str, version: int, name: str) -> int:
        v = self._version(dataset, version)
        return self.catalog.store.sub(v.path).size(self._stored_name(name))

    @staticmethod
    def _stored_name(name: str) -> str:
        if name not in FILES:
            raise NotFound(f"没有该文件 (no such file): {name!r}; a version has "
                           f"{' and '.join(FILES)}")
        return FILES[name]

    def stream(self, dataset: str, version: int, name: str, checked: DatasetVersion | None = None
               ) -> Iterator[bytes]:
        """The version's stored file, in chunks, as stored."""
        stored = self._stored_name(name)
        v = checked or self._version(dataset, version)
        files = self.catalog.store.sub(v.path)
        if not files.exists(stored):
            raise NotFound(f"版本文件缺失 (file missing): {name} of {dataset} version {version} is not in the store")
        f = files.open_input(stored)

        def chunks() -> Iterator[bytes]:
            try:
                while chunk := f.read(CHUNK):
                    yield chunk
            finally:
                f.close()
        return chunks()

    # --- access reports -----------------------------------------------------------------
    def check_reports(self, department: str, reports: list, now: datetime | None = None) -> list[dict]:
        """The peer's reports as audit entries' fields (see catalog/serving/federation.py);
        InvalidRequest on a malformed one, AccessDenied naming datasets the peer may not mirror."""
        if not isinstance(reports, list) or not reports:
            raise InvalidRequest("访问报告为空 (no reports): send {\"reports\": [...]} with at least one report")
        out, refused = [], set()
        allowed = self.may_mirror(department, [d for r in reports if isinstance(r, dict)
                                               for d in (r.get("datasets") or []) if isinstance(d, str)], now)
        for i, r in enumerate(reports):
            if not isinstance(r, dict) or not isinstance(r.get("id"), int) or not all(
                    isinstance(r.get(k), str) and r.get(k) for k in ("at", "department", "purpose", "action")) \
                    or not isinstance(r.get("datasets"), list) or not r["datasets"] \
                    or not isinstance(r.get("records") or [], list) \
                    or not isinstance(r.get("holder"), str | None):
                raise InvalidRequest(f"访问报告格式错误 (bad report): report {i} needs id (int), at, department, "
                                     "purpose, action (strings), holder (string or null), datasets (non-empty "
                                     "list), records (list)")
            try:
                datetime.fromisoformat(r["at"])
            except ValueError:
                raise InvalidRequest(f"访问报告时间无效 (bad time): report {r['id']}: at {r['at']!r} "
                                     "is no RFC 3339 time") from None
            refused.update(d for d in r["datasets"] if d not in allowed)
            out.append({k: r.get(k) for k in REPORT_KEYS})
        if refused:
            raise AccessDenied(f"报告了不可镜像的数据集 (datasets not mirrorable): {department} may not mirror "
                               f"{', '.join(sorted(map(str, refused)))}; no report of this batch was accepted")
        return out
