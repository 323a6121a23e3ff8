"""Who may see what: departments, credentials, grants, purposes and field filtering.

Sharing attribute of a dataset: unconditional (any registered department), conditional (an
explicit, unexpired grant for department x dataset x purpose; optionally limited to fields),
not_shared (never leaves). The API and the CLI both decide through `Access`.
Credential, dataset and grant reads are cached for `ttl` seconds (the API: EXCHANGE_API_CACHE_TTL,
default 2; 0 disables the cache). Keys are compared by their SHA-256 on every request. How
promptly a key stops working: revoked through this `Access`, at once (every change clears the
cache); revoked elsewhere (the CLI, another worker), within `ttl` seconds; expired, at once (the
expiry is compared with the clock on every request). tests/integration/api/test_api_hot_path.py.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy import Engine

from base import clock
from base.errors import AccessDenied, InvalidRequest, NotFound, Unauthenticated, UnknownName
from catalog.db.models import Credential, Dataset, Department, Grant
from catalog.federation import access_reports
from catalog.serving import audit
from schemas.items import catalogue
from schemas.types import all_types
from trust.verify import label_unsigned

DEPT_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,63}$")
CASE_RE = re.compile(r"^case:[A-Za-z0-9][A-Za-z0-9._/-]{3,63}$")
ANY_CASE = "case:*"
ROLES = ("consumer", "auditor", "exchange")   # exchange: a peer exchange (federation routes only)
MIRROR = "mirror"        # the purpose of an agreement (a grant to a peer exchange department)
TOKEN_RE = re.compile(r"^exk_([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$")
MAX_DAYS = 730          # the longest a credential or a grant lives


def now_utc() -> datetime:
    return clock.now()


def _aware(t: datetime | None) -> datetime | None:
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


@lru_cache(maxsize=1)
def item_codes() -> frozenset[str]:
    return frozenset(catalogue())


def check_purpose(purpose: str | None) -> str:
    """A service-item code (schemas/items) or a case number `case:…`; else refused."""
    if not purpose:
        raise InvalidRequest("未说明用途 (no purpose): state the purpose: a service-item code (e.g. DJ-SCJG-0003) or a "
                             "case number as case:NUMBER")
    if len(purpose) <= 70 and (purpose in item_codes() or CASE_RE.match(purpose)):
        return purpose
    raise InvalidRequest("用途无效 (unknown purpose): "
                         "purpose is neither a known service-item code (see GET /v1/items) nor a "
                         "case number as case:NUMBER (4-64 of A-Z a-z 0-9 . _ / -)")


def check_department_id(dept: str) -> str:
    if not DEPT_RE.match(dept or ""):
        raise InvalidRequest("部门编号无效 (bad department id): "
                             "a department id is 2-64 of a-z 0-9 _ . - starting with a letter or digit")
    return dept


def _check_days(what: str, days: int) -> None:
    if not 1 <= days <= MAX_DAYS:
        raise InvalidRequest(f"有效天数超出范围 (days out of range): {what} lives 1 to {MAX_DAYS} days, not {days}")


def _secret_hash(secret: str) -> str:
    # the secret is 256 random bits: a plain SHA-256 cannot be brute-forced, unlike a password
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    department: str
    role: str
    key_id: str


@dataclass(frozen=True)
class DatasetInfo:
    id: str
    certificate_type: str
    sharing: str
    department: str | None = None       # the source department (its stewards answer objections)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    fields: frozenset[str] | None = None      # None: every field
    reason: str = ""


class Access:
    def __init__(self, engine: Engine, ttl: float = 2.0):
        self.engine, self.ttl = engine, ttl
        self._cache: dict = {}

    def _cached(self, key, load):
        hit = self._cache.get(key)
        t = time.monotonic()
        if hit is not None and t - hit[0] < self.ttl:
            return hit[1]
        value = load()
        if self.ttl > 0:
            self._cache[key] = (t, value)
        return value

    def clear(self) -> None:
        self._cache.clear()

    # --- authentication -----------------------------------------------------------------
    def authenticate(self, token: str | None) -> Caller:
        m = TOKEN_RE.match(token or "")
        if m is None:
            raise Unauthenticated("缺少交换密钥 (no exchange key): "
                                  "send an exchange key as `Authorization: Bearer exk_…`; ask the "
                                  "exchange operator for one (`exchange credentials issue`)")
        key_id, secret = m.groups()
        row = self._cached(("cred", key_id), lambda: self._credential(key_id))
        if row is None or not hmac.compare_digest(row["secret_hash"], _secret_hash(secret)):
            raise Unauthenticated("交换密钥无效 (unknown exchange key): ask the exchange operator for a new one")
        if row["revoked_at"] is not None or row["expires_at"] <= now_utc() or not row["active"]:
            raise Unauthenticated(f"交换密钥已吊销或过期 (revoked or expired): "
                                  f"exchange key {key_id} is revoked or expired; ask for a new one")
        return Caller(row["department_id"], row["role"], key_id)

    def current(self, key_id: str) -> Caller:
        """The caller of a key that authenticated earlier (a dashboard session), if the key is
        still unrevoked, unexpired and its department active."""
        row = self._cached(("cred", key_id), lambda: self._credential(key_id))
        if row is None or row["revoked_at"] is not None or row["expires_at"] <= now_utc() or not row["active"]:
            raise Unauthenticated(f"交换密钥已吊销或过期 (revoked or expired): "
                                  f"exchange key {key_id} is revoked or expired; log in again")
        return Caller(row["department_id"], row["role"], key_id)

    def _credential(self, key_id: str) -> dict | None:
        c, d = Credential.__table__.c, Department.__table__.c
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(c.secret_hash, c.department_id, c.expires_at, c.revoked_at,
                                       d.role, d.active).join_from(Credential, Department)
                             .where(c.key_id == key_id)).mappings().first()
        if r is None:
            return None
        return {**r, "expires_at": _aware(r["expires_at"]), "revoked_at": r["revoked_at"]}

    # --- decisions ----------------------------------------------------------------------
    def datasets(self) -> dict[str, DatasetInfo]:
        def load():
            with self.engine.connect() as conn:
                return {r.id: DatasetInfo(r.id, r.certificate_type, r.sharing, r.department) for r in conn.execute(
                    sa.select(Dataset.id, Dataset.certificate_type, Dataset.sharing, Dataset.department))}
        return self._cached("datasets", load)

    def mirrors(self) -> dict[str, str]:
        """Mirrored dataset -> the peer it comes from (its origin is owed access reports)."""
        return self._cached("mirrors", lambda: access_reports.mirrored(self.engine))

    def stewarded(self, department: str) -> list[str]:
        """The datasets whose source department is `department` (its stewards answer their
        objections on the dashboard); empty for a department that is no source."""
        return sorted(d.id for d in self.datasets().values() if d.department == department)

    def _grants(self, department: str) -> list[dict]:
        def load():
            g = Grant.__table__.c
            with self.engine.connect() as conn:
                rows = conn.execute(sa.select(g.dataset_id, g.purposes, g.fields, g.expires_at)
                                    .where(g.department_id == department, g.revoked_at.is_(None))
                                    ).mappings().all()
            return [{**r, "expires_at": _aware(r["expires_at"])} for r in rows]
        return self._cached(("grants", department), load)

    def decide(self, department: str, dataset: str, purpose: str) -> Decision:
        info = self.datasets().get(dataset)
        if info is None:
            return Decision(False, reason=f"未找到数据集 (no dataset): {dataset!r}")
        if info.sharing == "not_shared":
            return Decision(False, reason=f"不予共享 (not shared): dataset {dataset} is not shared with any department")
        if info.sharing == "unconditional":
            return Decision(True, reason="unconditional")
        now, fields, found = now_utc(), set(), False
        for g in self._grants(department):
            if g["dataset_id"] != dataset or g["expires_at"] <= now:
                continue
            if purpose in g["purposes"] or (ANY_CASE in g["purposes"] and purpose.startswith("case:")):
                if g["fields"] is None:
                    return Decision(True, None, "grant")
                found = True
                fields.update(g["fields"])
        if found:
            return Decision(True, frozenset(fields), "grant (some fields)")
        return Decision(False, reason=f"有条件共享，无有效授权 (conditional, no grant): "
                                      f"dataset {dataset} is shared on condition: department {department} "
                                      f"has no current grant for purpose {purpose}; ask its steward")

    def require(self, department: str, dataset: str, purpose: str) -> Decision:
        d = self.decide(department, dataset, purpose)
        if not d.allowed:
            raise AccessDenied(d.reason)
        return d

    # --- administration (every change audited) -----------------------------------------
    def _audit(self, actor: str, action: str, subject: str, detail: dict | None = None) -> None:
        audit.append(self.engine, department=actor, purpose="administration", action=action,
                     outcome="done", subject=subject, detail=detail)
        self.clear()

    def add_department(self, dept: str, name: str, role: str = "consumer", actor: str = "operator") -> None:
        check_department_id(dept)
        if role not in ROLES:
            raise UnknownName("role", role, ROLES)
        with self.engine.begin() as c:
            if c.scalar(sa.select(Department.id).where(Department.id == dept)):
                c.execute(sa.update(Department.__table__).where(Department.id == dept)
                          .values(name=name, role=role, active=True))
            else:
                c.execute(sa.insert(Department.__table__).values(
                    id=dept, name=name, role=role, active=True, created_at=now_utc()))
        self._audit(actor, "department.add", dept, {"name": name, "role": role})

    def departments(self) -> list[dict]:
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(sa.select(Department.__table__)
                                               .order_by(Department.id)).mappings()]

    def issue_credential(self, dept: str, days: int = 90, actor: str = "operator") -> dict:
        self._department(dept)
        _check_days("a credential", days)
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        expires = now_utc() + timedelta(days=days)
        with self.engine.begin() as c:
            c.execute(sa.insert(Credential.__table__).values(
                key_id=key_id, department_id=dept, secret_hash=_secret_hash(secret),
                created_at=now_utc(), expires_at=expires))
        self._audit(actor, "credential.issue", dept, {"key_id": key_id, "expires_at": expires.isoformat()})
        return {"key_id": key_id, "department": dept, "expires_at": expires.isoformat(),
                "key": f"exk_{key_id}.{secret}"}

    def revoke_credential(self, key_id: str, actor: str = "operator") -> None:
        with self.engine.begin() as c:
            n = c.execute(sa.update(Credential.__table__).where(
                Credential.key_id == key_id, Credential.revoked_at.is_(None))
                .values(revoked_at=now_utc())).rowcount
        if not n:
            raise NotFound(f"未找到有效的交换密钥 (no active credential): "
                           f"{key_id!r}; list them with `exchange credentials list`")
        self._audit(actor, "credential.revoke", key_id)

    def credentials(self, dept: str | None = None) -> list[dict]:
        c = Credential.__table__.c
        q = sa.select(c.key_id, c.department_id, c.created_at, c.expires_at, c.revoked_at).order_by(c.created_at)
        if dept:
            q = q.where(c.department_id == dept)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def add_grant(self, dept: str, dataset: str, purposes: list[str], fields: list[str] | None,
                  days: int = 365, actor: str = "operator") -> int:
        _check_days("a grant", days)
        role = self._role(dept)
        info = self.datasets().get(dataset) or self._fresh_dataset(dataset)
        if role == "exchange" and (purposes != [MIRROR] or fields is not None):
            raise InvalidRequest(f"交换平台部门只接受共享协议 (agreements only): {dept} is a peer exchange; it is "
                                 f"granted purpose {MIRROR} on every field only (`exchange agreements add`)")
        for p in purposes:
            if p == MIRROR and role != "exchange":
                raise InvalidRequest(f"用途 mirror 只授予交换平台 (mirror is for peer exchanges): {dept} is a "
                                     f"{role} department")
            if p not in (ANY_CASE, MIRROR):
                check_purpose(p)
        if not purposes:
            raise InvalidRequest(f"授权未写明用途 (no purpose): "
                                 f"a grant names at least one purpose (item codes or {ANY_CASE})")
        if fields is not None:
            known = all_types()[info.certificate_type].field_names
            for f in fields:
                if f not in known:
                    raise UnknownName(f"field of {info.certificate_type}", f, known)
        expires = now_utc() + timedelta(days=days)
        with self.engine.begin() as c:
            gid = c.execute(sa.insert(Grant.__table__).values(
                department_id=dept, dataset_id=dataset, purposes=sorted(set(purposes)),
                fields=sorted(set(fields)) if fields is not None else None,
                created_at=now_utc(), expires_at=expires).returning(Grant.id)).scalar_one()
        self._audit(actor, "grant.add", dept, {"grant": gid, "dataset": dataset, "purposes": purposes,
                                               "fields": fields, "expires_at": expires.isoformat()})
        return gid

    def revoke_grant(self, grant_id: int, actor: str = "operator") -> None:
        with self.engine.begin() as c:
            n = c.execute(sa.update(Grant.__table__).where(Grant.id == grant_id, Grant.revoked_at.is_(None))
                          .values(revoked_at=now_utc())).rowcount
        if not n:
            raise NotFound(f"未找到有效的授权 (no active grant): {grant_id}; list them with `exchange grants list`")
        self._audit(actor, "grant.revoke", str(grant_id))

    def grants(self, dept: str | None = None) -> list[dict]:
        q = sa.select(Grant.__table__).order_by(Grant.id)
        if dept:
            q = q.where(Grant.department_id == dept)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def _department(self, dept: str) -> None:
        self._role(dept)

    def _role(self, dept: str) -> str:
        check_department_id(dept)
        with self.engine.connect() as c:
            role = c.scalar(sa.select(Department.role).where(Department.id == dept))
        if role is None:
            raise NotFound(f"未找到部门 (no department): {dept!r}; add it with `exchange departments add`")
        return role

    def _fresh_dataset(self, dataset: str) -> DatasetInfo:
        self.clear()
        info = self.datasets().get(dataset)
        if info is None:
            raise UnknownName("dataset", dataset, self.datasets())
        return info


# A bundle's status is made of these record fields (an expired record's status_since is the day
# after its valid_to): a partial bundle gives it only when none of them is withheld.
STATUS_SOURCES = frozenset({"status", "valid_to"})


def disclose(bundle: dict, fields: frozenset[str] | None) -> dict:
    """The full verifiable bundle when every field is granted; otherwise only the granted
    fields, marked unverifiable (the signature covers the whole record: see docs/consumer-api.md)."""
    record = bundle["record"]
    withheld = sorted(k for k in record if k != "record_id" and fields is not None and k not in fields)
    if not withheld:
        return label_unsigned({**bundle, "disclosure": "full", "verifiable": True})
    partial = {"format": "exchange-record-partial/1", "record_id": bundle["record_id"],
               "dataset": bundle["dataset"], "version": bundle["version"],
               "record": {k: v for k, v in record.items() if k == "record_id" or k in fields},
               "disclosure": "partial", "verifiable": False, "withheld": withheld,
               "note": "only the granted fields are returned; the signature covers the whole record, "
                       "so this partial record cannot be verified offline"}
    if not STATUS_SOURCES & set(withheld):
        partial.update(status=bundle.get("status"), status_since=bundle.get("status_since"))
    return partial
