"""Federation at this exchange's doors, audited: what a peer exchange department (role
`exchange`) is served from catalog/federation/origin.py, the access reports it sends in, the
agreements the operator makes with it, and the public list of this exchange's cosignatures.

Every call of a peer is an audit entry (purpose `mirror`; actions mirror_list, mirror_version,
mirror_file, peer_access), refused ones too; each access report a peer sends becomes one entry
of its own (action peer_<action>, the end consumer's purpose, detail.on_behalf_of), so the
holder's access report here shows who asked at the peer, for whom and why."""
from __future__ import annotations

import base64
from collections.abc import Iterator

from base import clock
from base.errors import AccessDenied, ExchangeError, InvalidRequest, NotFound
from base.settings import get_settings
from catalog.federation import access_reports, cosignatures
from catalog.federation.origin import MIRROR_PURPOSE, Origin
from catalog.publish.key_status import public_keys
from catalog.service import Catalog
from catalog.serving import audit
from catalog.serving.access import MIRROR, Access, Caller
from catalog.serving.consumer import PENDING
from trust import cosign


def exchange_only(caller: Caller | None) -> None:
    """Refuse a caller that is not a peer exchange department on the federation routes."""
    if caller is None or caller.role != "exchange":
        raise AccessDenied(f"仅限交换平台部门 (peer exchanges only): department "
                           f"{caller.department if caller else '-'} is a {caller.role if caller else '-'} "
                           "department; the federation routes answer peer exchange departments "
                           "(role exchange) only")


def cosigner_vkey(name: str, x: str) -> str:
    """The signed-note verifier key of a cosigning Ed25519 key (public key: the JWK's `x`)."""
    return cosign.cosigner_vkey(name, base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)))


class FederationService:
    def __init__(self, catalog: Catalog, access: Access, operator: str | None = None,
                 log_origin: str | None = None):
        self.catalog, self.access, self.engine = catalog, access, catalog.engine
        self.origin = Origin(catalog, log_origin)
        self.log_origin = log_origin         # this exchange's name; None: the process's settings
        self.operator = operator

    # --- audit ---------------------------------------------------------------------------
    def _audit(self, caller: Caller | None, purpose: str, action: str, outcome: str, **kw) -> None:
        if self.operator is not None:
            kw["detail"] = {**(kw.get("detail") or {}), "via": "cli", "operator": self.operator}
        rows = [audit.entry(department=caller.department if caller else "-", purpose=purpose,
                            action=action, outcome=outcome, **kw)]
        self._write(rows)

    def _write(self, rows: list[dict]) -> None:
        pending = PENDING.get()
        if pending is None:
            audit.append_many(self.engine, rows)
        else:           # the API writes them (group commit) before the response starts
            pending.extend(rows)

    def _refused(self, caller: Caller | None, action: str, exc: ExchangeError, **kw) -> None:
        self._audit(caller, MIRROR_PURPOSE, action, f"refused:{exc.status}",
                    detail={"reason": str(exc)[:300]}, **kw)
        exc.audited = True

    def require_peer(self, caller: Caller, action: str) -> None:
        """AccessDenied (audited) unless the caller is a peer exchange department."""
        self._guard(caller, action, lambda: None)

    def _guard(self, caller: Caller | None, action: str, check, **kw):
        try:
            exchange_only(caller)
            return check()
        except (AccessDenied, NotFound, InvalidRequest) as exc:
            self._refused(caller, action, exc, **kw)
            raise

    # --- a peer's calls ------------------------------------------------------------------
    def datasets(self, caller: Caller) -> dict:
        out = self._guard(caller, "mirror_list", lambda: self.origin.datasets(caller.department))
        self._audit(caller, MIRROR_PURPOSE, "mirror_list", "allowed",
                    datasets=[d["dataset"] for d in out["datasets"]])
        return out

    def version(self, caller: Caller, dataset: str, version: int) -> dict:
        def check():
            self.origin.require(caller.department, dataset)
            return self.origin.version(dataset, version)
        out = self._guard(caller, "mirror_version", check, datasets=[dataset], subject=f"v{version}")
        self._audit(caller, MIRROR_PURPOSE, "mirror_version", "allowed", datasets=[dataset],
                    subject=f"v{version}")
        return out

    def file(self, caller: Caller, dataset: str, version: int, name: str) -> tuple[Iterator[bytes], int]:
        """The version's stored file as chunks, and its size in bytes."""
        def check():
            self.origin.require(caller.department, dataset)
            return self.origin.stream(dataset, version, name), self.origin.file_size(dataset, version, name)
        out = self._guard(caller, "mirror_file", check, datasets=[dataset], subject=f"v{version}/{name}"[:128])
        self._audit(caller, MIRROR_PURPOSE, "mirror_file", "allowed", datasets=[dataset],
                    subject=f"v{version}/{name}"[:128])
        return out

    def receive_reports(self, caller: Caller, reports: list) -> dict:
        """A peer's reports of its consumers' accesses to records of this exchange's datasets:
        one audit entry each, on behalf of the end consumer (all of the batch or none)."""
        checked = self._guard(caller, "peer_access",
                              lambda: self.origin.check_reports(caller.department, reports))
        at = clock.now()
        rows = [audit.entry(department=caller.department, purpose=str(r["purpose"])[:255],
                            action=f"peer_{r['action']}"[:64], outcome="allowed", at=at,
                            holder=(r["holder"] or None) and str(r["holder"])[:64],
                            datasets=sorted(map(str, r["datasets"])),
                            subject=str(r["records"][0])[:128] if r.get("records") else None,
                            detail={"on_behalf_of": str(r["department"])[:128], "via": "peer",
                                    "peer_report": r["id"], "at_peer": str(r["at"])[:40],
                                    **({"records": [str(x)[:64] for x in r["records"][:50]]}
                                       if r.get("records") else {})})
                for r in checked]
        rows.append(audit.entry(department=caller.department, purpose=MIRROR_PURPOSE, action="peer_access",
                                outcome="allowed", at=at,
                                datasets=sorted({d for r in checked for d in r["datasets"]}),
                                detail={"reports": len(checked)}))
        self._write(rows)
        return {"accepted": len(checked)}

    # --- public --------------------------------------------------------------------------
    def cosignatures(self, dataset: str | None = None, limit: int = 100) -> dict:
        name = self.log_origin or get_settings().log_origin
        active = [k for k in public_keys(self.engine) if k["status"] == "active"]
        return {"witness": name, "verifier_key": cosigner_vkey(name, active[-1]["jwk"]["x"]) if active else None,
                "cosignatures": [{k: r[k] for k in ("dataset", "version", "peer", "checkpoint", "cosignature")}
                                 | {"cosigned_at": r["cosigned_at"]}
                                 for r in cosignatures.listing(self.engine, dataset, limit)]}

    # --- agreements (the operator) -------------------------------------------------------
    def add_agreement(self, department: str, dataset: str, days: int = 365, actor: str = "operator") -> int:
        """An exchange-to-exchange agreement (共享协议): a grant of `dataset` to the peer exchange
        department with purpose mirror on every field. Conditional datasets only."""
        role = next((d["role"] for d in self.access.departments() if d["id"] == department), None)
        if role is None:
            raise NotFound(f"未找到部门 (no department): {department!r}; add it with "
                           f"`exchange departments add {department} NAME --role exchange`")
        if role != "exchange":
            raise InvalidRequest(f"不是交换平台部门 (not a peer exchange): {department} is a {role} department; "
                                 "agreements are made with role-exchange departments only")
        info = self.access.datasets().get(dataset) or self.access._fresh_dataset(dataset)
        if info.sharing == "not_shared":
            raise InvalidRequest(f"不予共享 (not shared): dataset {dataset} never leaves this exchange; "
                                 "no agreement can share it")
        if info.sharing == "unconditional":
            raise InvalidRequest(f"无需共享协议 (no agreement needed): dataset {dataset} is shared "
                                 "unconditionally; every peer exchange may mirror it")
        if dataset in self.mirrored():
            raise InvalidRequest(f"镜像数据集不再转供 (a mirrored dataset): {dataset} is mirrored here from "
                                 "another exchange; its origin makes the agreements")
        return self.access.add_grant(department, dataset, [MIRROR], None, days, actor=actor)

    def agreements(self) -> list[dict]:
        exchanges = {d["id"] for d in self.access.departments() if d["role"] == "exchange"}
        return [g for g in self.access.grants() if g["department_id"] in exchanges
                and MIRROR in (g["purposes"] or [])]

    def revoke_agreement(self, grant_id: int, actor: str = "operator") -> None:
        if not any(g["id"] == grant_id for g in self.agreements()):
            raise NotFound(f"未找到共享协议 (no agreement): {grant_id}; list them with `exchange agreements list`")
        self.access.revoke_grant(grant_id, actor=actor)

    def mirrored(self) -> set[str]:
        return set(access_reports.mirrored(self.engine))
