"""The dashboard's pages: overview and catalogue search, a page per dataset, the freshness
board, the audit search, the department scorecards (an auditor's), and the open objections
(数据异议), a page per objection and its answer (an auditor's, or a source department's
steward's: only the objections to its own datasets), and the peer exchanges this one mirrors
(an auditor's)."""
from __future__ import annotations

import asyncio
import time
from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse

from api.dashboard import charts, session
from api.dashboard.auth import AuditorDep, MemberDep, record
from api.dashboard.render import airflow_url, error, language, page
from base import i18n, times
from base.errors import Conflict, InvalidRequest, NotFound
from catalog import registrations
from catalog.ledger import monitoring
from catalog.serving import audit, objections
from catalog.serving.access import Caller
from catalog.serving.holders import holder_key
from schemas.types import all_types

router = APIRouter(prefix="/dashboard", include_in_schema=False)
PAGE_SIZE = 50
PERIODS = ("day", "week", "month")
CHAIN_CACHE_SECONDS = 30


def _catalog(request: Request):
    return request.app.state.consumer.catalog


def _ledger(request: Request):
    return request.app.state.ledger


async def _unloaded(request: Request) -> list:
    """Registrations in the catalogue that could not be loaded, with why."""
    scan = await asyncio.to_thread(registrations.scan, request.app.state.settings.catalog_url)
    return scan.problems


def _matches(d: dict, q: str) -> bool:
    q = q.casefold()
    return any(q in str(d.get(k) or "").casefold()
               for k in ("dataset", "title", "certificate_type", "type_title", "department"))


@router.get("/")
async def overview(request: Request, caller: AuditorDep, q: str = ""):
    catalog = _catalog(request)
    types = all_types()
    fresh = {f["dataset"]: f for f in monitoring.freshness(catalog)}
    datasets = []
    for d in catalog.datasets():
        t = types.get(d["certificate_type"])
        datasets.append({**d, "type_title": t.title if t else "", "freshness": fresh.get(d["dataset"], {})})
    q = q.strip()[:100]
    shown = [d for d in datasets if _matches(d, q)] if q else datasets
    runs = _ledger(request).runs(limit=10)
    tiles = {"datasets": len(datasets), "records": sum(d["records"] for d in datasets),
             "late": sum(1 for f in fresh.values() if f.get("state") in ("late", "stale", "never")),
             "backlog": sum(f.get("backlog") or 0 for f in fresh.values()),
             "failed": sum(1 for r in runs if r["state"] == "failed")}
    return page(request, "overview.html", {"q": q, "datasets": shown, "total": len(datasets),
                                           "tiles": tiles, "runs": runs,
                                           "unloaded": await _unloaded(request)})


@router.get("/datasets/{dataset_id}")
async def dataset(request: Request, dataset_id: str, caller: AuditorDep):
    catalog = _catalog(request)
    try:
        d = catalog.dataset(dataset_id)
    except NotFound as exc:
        return error(request, 404, i18n.t("error.no_dataset", language(request)), str(exc))
    ctype = all_types().get(d["certificate_type"])
    reg = d["sources"][0]["registration"] if d["sources"] else {}
    runs = sorted((r for s in d["sources"] for r in _ledger(request).runs(s["source"], limit=20)),
                  key=lambda r: r["id"], reverse=True)[:20]
    for r in runs:
        r["airflow_url"] = airflow_url(request.app.state.settings.airflow_url, r["source_id"],
                                       r.get("dag_run_id"))
        r["docs_url"] = f"/dashboard/runs/{r['id']}/docs/" if r.get("data_docs") else None
    trend = monitoring.quality_trend(catalog, dataset_id)
    return page(request, "dataset.html", {
        "d": d, "reg": reg, "ctype": ctype, "versions": catalog.versions(dataset_id),
        "runs": runs, "trend": trend, "trend_svg": charts.trend(trend, lang=language(request)),
        "quarantine": _ledger(request).quarantine_summary(dataset_id)})


@router.get("/freshness")
async def freshness(request: Request, caller: AuditorDep):
    board = monitoring.freshness(_catalog(request))
    counts = {s: sum(1 for b in board if b["state"] == s) for s in ("fresh", "late", "stale", "never")}
    return page(request, "freshness.html", {"board": board, "counts": counts,
                                            "unloaded": await _unloaded(request)})


@router.get("/scorecards")
async def scorecards(request: Request, caller: AuditorDep, period: str = "week"):
    if period not in PERIODS:
        lang = language(request)
        return error(request, 400, i18n.t("error.period_title", lang),
                     i18n.t("error.period", lang, periods=", ".join(PERIODS), given=repr(period)))
    cards = monitoring.scorecards(_catalog(request), period)
    lang = language(request)
    chart = charts.bars(cards, "department_name", [("on_time_share", i18n.t("col.on_time", lang)),
                                                   ("quality_pass_share", i18n.t("col.quality_pass", lang))],
                        lang=lang)
    return page(request, "scorecards.html", {"cards": cards, "period": period, "periods": PERIODS,
                                             "chart": chart})


def _peers(request: Request) -> list[dict]:
    """Peers.list() of the catalogue: each peer with its pinned keys, last sync and mirrors."""
    from catalog.federation.peers import Peers  # the federation's catalogue side (issue #19)
    return [p if isinstance(p, dict) else dict(vars(p)) for p in Peers(_catalog(request).engine).list()]


@router.get("/peers")
async def peers(request: Request, caller: AuditorDep):
    return page(request, "peers.html", {"peers": await asyncio.to_thread(_peers, request)})


def _source(caller: Caller) -> str | None:
    """Whose objections the session sees: None, every one (an auditor); else a steward's
    department, the objections to its own datasets only."""
    return None if caller.role == "auditor" else caller.department


@router.get("/objections")
async def objection_list(request: Request, caller: MemberDep):
    """Objections not yet closed, the nearest deadline first, overdue ones marked."""
    source = _source(caller)
    rows = await asyncio.to_thread(objections.find, request.app.state.consumer.engine,
                                   department=source, state="unresolved")
    return page(request, "objections.html", {"rows": rows, "overdue": sum(o["overdue"] for o in rows),
                                             "source": source, "unresolved": objections.UNRESOLVED})


def _objection(request: Request, caller: Caller, objection_id: str) -> dict:
    """The objection the session may see (NotFound for a missing one and for one to another
    department's dataset alike)."""
    engine = request.app.state.consumer.engine
    if not objection_id.isdigit() or len(objection_id) > 18:
        raise NotFound(f"未找到异议 (no objection): #{objection_id[:20]}; open one from the objections list")
    source = _source(caller)
    if source is None:
        return objections.get(engine, int(objection_id))
    return objections.get_as_source(engine, int(objection_id), source)


def _objection_page(request: Request, o: dict, message: str | None = None, form: dict | None = None,
                    status_code: int = 200):
    return page(request, "objection.html", {"o": o, "message": message, "form": form or {},
                                            "unresolved": objections.UNRESOLVED}, status_code)


@router.get("/objections/{objection_id}")
async def objection_page(request: Request, objection_id: str, caller: MemberDep):
    try:
        o = await asyncio.to_thread(_objection, request, caller, objection_id)
    except NotFound as exc:
        return error(request, 404, i18n.t("error.no_objection", language(request)), str(exc))
    return _objection_page(request, o)


@router.post("/objections/{objection_id}/resolve")
async def objection_resolve(request: Request, objection_id: str, caller: MemberDep,
                            outcome: Annotated[str, Form(max_length=20)] = "",
                            reason: Annotated[str, Form(max_length=4 * objections.MAX_REASON)] = "",
                            csrf: Annotated[str, Form(max_length=100)] = ""):
    """The steward's (or an auditor's) answer: corrected at the source, or upheld with a reason."""
    lang, engine = language(request), request.app.state.consumer.engine
    detail = {"objection": objection_id[:20], "outcome": outcome[:20]}

    def refused(status: int, why: str) -> None:
        record(request, "dashboard.objection_resolve", f"refused:{status}", caller.department,
               subject=caller.key_id, detail={**detail, "reason": why[:300]})

    if not session.same_origin(request) or not session.csrf_ok(
            request.app.state.dashboard_secret, request.state.dashboard_session, csrf):
        refused(403, "cross-site or forged answer form")
        return error(request, 403, i18n.t("objections.refused_title", lang), i18n.t("objections.forged", lang))
    try:
        o = await asyncio.to_thread(_objection, request, caller, objection_id)
    except NotFound as exc:
        refused(404, str(exc))
        return error(request, 404, i18n.t("error.no_objection", lang), str(exc))
    form = {"outcome": outcome, "reason": reason}
    if outcome not in objections.OUTCOMES:
        message = i18n.t("objections.bad_outcome", lang, given=repr(outcome[:20]))
        refused(400, message)
        return _objection_page(request, o, message, form, 400)
    by = f"{caller.department} (dashboard, key {caller.key_id})"
    try:
        done = await asyncio.to_thread(objections.resolve, engine, o["id"], outcome, reason, by,
                                       source=_source(caller))
    except NotFound as exc:
        refused(404, str(exc))
        return error(request, 404, i18n.t("error.no_objection", lang), str(exc))
    except (InvalidRequest, Conflict) as exc:
        refused(exc.status, str(exc))
        o = await asyncio.to_thread(_objection, request, caller, objection_id)
        return _objection_page(request, o, str(exc), form, exc.status)
    record(request, "dashboard.objection_resolve", "done", caller.department, datasets=[done["dataset"]],
           subject=caller.key_id, detail={**detail, "state": done["state"]})
    return RedirectResponse(f"/dashboard/objections/{done['id']}", status_code=303)


def _day(text: str, name: str, lang: str) -> datetime | None:
    """The start of a day in the display time zone (the day people mean), as an instant."""
    if not text:
        return None
    try:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), times.display_zone())
    except ValueError:
        raise InvalidRequest(i18n.t("error.date", lang, name=name, given=repr(text[:20]))) from None


async def _chain(request: Request) -> audit.ChainReport:
    """The audit chain's verification, at most CHAIN_CACHE_SECONDS old (it walks the whole log)."""
    cached = getattr(request.app.state, "dashboard_chain", None)
    if cached and time.monotonic() - cached[0] < CHAIN_CACHE_SECONDS:
        return cached[1]
    report = await asyncio.to_thread(audit.verify_chain, request.app.state.consumer.engine)
    request.app.state.dashboard_chain = (time.monotonic(), report)
    return report


@router.get("/audit")
async def audit_search(request: Request, caller: AuditorDep, holder: str = "", department: str = "",
                       purpose: str = "", action: str = "", since: str = "", until: str = "",
                       before: Annotated[int | None, Query(ge=1)] = None):
    form = {"holder": holder.strip()[:64], "department": department.strip()[:128],
            "purpose": purpose.strip()[:255], "action": action.strip()[:64],
            "since": since.strip()[:10], "until": until.strip()[:10]}
    engine = request.app.state.consumer.engine
    message, total, rows, key = None, 0, [], None
    try:
        key = holder_key(form["holder"]) if form["holder"] else None
        lang = language(request)
        start = _day(form["since"], i18n.t("audit.since", lang), lang)
        end = _day(form["until"], i18n.t("audit.until", lang), lang)
        total, rows = audit.search(engine, holder=key, department=form["department"] or None,
                                   purpose=form["purpose"] or None, action=form["action"] or None,
                                   since=start, until=end + timedelta(days=1) if end else None,
                                   before=before, limit=PAGE_SIZE + 1)
    except InvalidRequest as exc:
        message = str(exc)
    record(request, "dashboard.audit_search", "refused:400" if message else "allowed", caller.department,
           holder=key, subject=caller.key_id,
           detail={k: v for k, v in form.items() if v and k != "holder"} | ({"before": before} if before else {}))
    chain = await _chain(request)
    return page(request, "audit.html", {
        "form": form, "total": total, "before": before,
        "rows": rows[:PAGE_SIZE],
        "older": rows[PAGE_SIZE - 1]["seq"] if len(rows) > PAGE_SIZE else None,
        "message": message, "chain": chain, "actions": audit.actions(engine),
        "departments": request.app.state.consumer.access.departments(),
        "query": {k: v for k, v in form.items() if v}}, 400 if message else 200)
