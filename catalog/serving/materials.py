"""The materials check: for a service item and a holder, each required material's answer.

held | held_expired | revoked | not_held | must_submit | may_supply_later
A certificate material is looked up for the person or body it belongs to (`whose`): the
applicant's holder id, or an extra id given for that role (legal_representative, spouse …).
"""
from __future__ import annotations

from datetime import date

from base.errors import InvalidRequest, NotFound
from catalog.serving.access import disclose
from catalog.serving.holders import holder_key
from schemas.items import WHOSE, catalogue

RANK = {"valid": 0, "expired": 1, "revoked": 2}
ANSWER = {"valid": "held", "expired": "held_expired", "revoked": "revoked"}
MAX_OTHERS = 8


def check_materials(access, catalog, caller, purpose: str, item_code: str, holder_id: str,
                    others: dict[str, str], today: date | None) -> tuple[dict, dict]:
    """The answer, and what its audit entry records (the caller writes it)."""
    if len(others) > MAX_OTHERS:
        raise InvalidRequest(f"其他持证主体过多 (too many holders): at most {MAX_OTHERS} extra holder ids")
    unknown = set(others) - set(WHOSE)
    if unknown:
        raise InvalidRequest(f"未知角色 (unknown roles): {sorted(unknown)}; known: {sorted(WHOSE)}")
    items = catalogue()
    if item_code not in items:
        raise NotFound(f"未找到服务事项 (no service item): {item_code!r}; list them with GET /v1/items")
    item = items[item_code]
    ids = {"applicant": holder_key(holder_id), **{k: holder_key(v) for k, v in others.items()}}
    by_type: dict[str, list[str]] = {}
    for info in access.datasets().values():
        by_type.setdefault(info.certificate_type, []).append(info.id)
    answers, holders, datasets, saved = [], set(), set(), {}
    for m in item.materials:
        a = {"material": m.name, "certificate": m.certificate, "whose": m.whose, "later": m.later}
        key = ids.get(m.whose or "applicant") if m.held else None
        if not m.held:
            a["answer"] = "may_supply_later" if m.later else "must_submit"
        elif key is None:
            a["answer"] = "may_supply_later" if m.later else "must_submit"
            a["note"] = f"no holder id given for {m.whose}"
        else:
            a.update(_held(access, catalog, caller, purpose, key, by_type.get(m.certificate, []), m.later, today))
            holders.add(key)
            datasets.update(a.pop("_datasets", []))
            if a["answer"] == "held":       # the applicant need not bring it
                saved[a["dataset"]] = saved.get(a["dataset"], 0) + 1
        answers.append(a)
    audited = dict(holder=ids["applicant"], datasets=sorted(datasets), subject=item_code,
                   detail={"saved": saved, **({"other_holders": sorted(holders - {ids["applicant"]})}
                                               if len(holders) > 1 else {})})
    return {"item": item_code, "name": item.name, "holder": ids["applicant"], "materials": answers}, audited


def _held(access, catalog, caller, purpose, key, datasets, later, today) -> dict:
    allowed = {}
    for ds in datasets:
        d = access.decide(caller.department, ds, purpose)
        if d.allowed:
            allowed[ds] = d
    if datasets and not allowed:
        return {"answer": "may_supply_later" if later else "must_submit",
                "note": "this certificate type is not shared with your department for this purpose"}
    best = None
    for r in catalog.lookup(key, today):
        if r["dataset"] in allowed and (best is None or RANK.get(r["status"], 9) < RANK.get(best["status"], 9)):
            best = r
    if best is None or best["status"] not in ANSWER:
        return {"answer": "may_supply_later" if later else "not_held", "_datasets": list(allowed)}
    bundle = disclose(catalog.bundle(best["record_id"], today), allowed[best["dataset"]].fields)
    return {"answer": ANSWER[best["status"]], "record_id": best["record_id"],
            "dataset": best["dataset"], "disputed": best["disputed"], "bundle": bundle,
            "_datasets": [best["dataset"]]}
