"""What operators watch: freshness against each update cycle, every source's last run, quality
trends and per-department scorecards. Read-only queries over the catalogue."""
from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from statistics import median

import sqlalchemy as sa

from base import clock, times
from base.errors import UnknownName
from catalog.db.models import AuditEntry, Dataset, Objection, QuarantineEntry, Run, Source
from registration import CYCLES

REFRESHED = ("published", "unchanged")       # a run that brought the dataset up to date
PERIODS = {"day": timedelta(days=1), "week": timedelta(days=7), "month": timedelta(days=30)}
CONSUMING = ("lookup", "bundle")              # actions that hand records to a department


def _now(now: datetime | None) -> datetime:
    return _aware(now) if now else clock.now()


def _aware(t: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: every stored time is UTC."""
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


def cycle(update_cycle: str) -> timedelta:
    return timedelta(days=CYCLES.get(update_cycle, 1))


def state_of(last_refresh: datetime | None, update_cycle: str, now: datetime) -> tuple[str, datetime | None]:
    """fresh until one cycle after the last refresh, late during the next cycle, stale after."""
    if last_refresh is None:
        return "never", None
    due = last_refresh + cycle(update_cycle)
    if now <= due:
        return "fresh", due
    return ("late" if now <= due + cycle(update_cycle) else "stale"), due


def _iso(t: datetime | None) -> str | None:
    return times.iso(t)


def _backlog(s, now: datetime) -> dict[str, tuple[int, datetime | None]]:
    rows = s.execute(sa.select(QuarantineEntry.dataset_id, sa.func.count(),
                               sa.func.min(QuarantineEntry.first_seen))
                     .where(QuarantineEntry.state != "resolved")
                     .group_by(QuarantineEntry.dataset_id)).all()
    return {d: (n, _aware(first)) for d, n, first in rows}


def _last_runs(s) -> dict[str, Run]:
    newest = sa.select(sa.func.max(Run.id)).group_by(Run.source_id)
    return {r.source_id: r for r in s.scalars(sa.select(Run).where(Run.id.in_(newest)))}


def _last_refresh(s) -> dict[str, datetime]:
    rows = s.execute(sa.select(Source.dataset_id, sa.func.max(Run.finished_at))
                     .join(Run, Run.source_id == Source.id)
                     .where(Run.state.in_(REFRESHED)).group_by(Source.dataset_id)).all()
    return {d: _aware(t) for d, t in rows}


def freshness(catalog, now: datetime | None = None) -> list[dict]:
    """Each dataset: fresh | late | stale | never, with its last refresh and last run."""
    now = _now(now)
    with catalog.session() as s:
        sources = defaultdict(list)
        for sid, ds in s.execute(sa.select(Source.id, Source.dataset_id).order_by(Source.id)):
            sources[ds].append(sid)
        refreshed, last, backlog = _last_refresh(s), _last_runs(s), _backlog(s, now)
        out = []
        for d in s.scalars(sa.select(Dataset).order_by(Dataset.id)):
            state, due = state_of(refreshed.get(d.id), d.update_cycle, now)
            runs = [last[x] for x in sources[d.id] if x in last]
            run = max(runs, key=lambda r: r.id) if runs else None
            n, oldest = backlog.get(d.id, (0, None))
            out.append({"dataset": d.id, "title": d.title, "department": d.department,
                        "update_cycle": d.update_cycle, "sources": sources[d.id],
                        "last_refresh": _iso(refreshed.get(d.id)), "due_at": _iso(due),
                        "state": state, "overdue_hours": _hours(now - due) if due and now > due else 0,
                        "last_run_state": run.state if run else None,
                        "last_run_at": _iso(_aware(run.finished_at or run.started_at)) if run else None,
                        "last_run_message": run.message if run else None,
                        "backlog": n, "backlog_oldest": _iso(oldest)})
        return out


def source_status(catalog, now: datetime | None = None) -> list[dict]:
    """Every source: its last run (state, counts, message), freshness and quarantine backlog."""
    now = _now(now)
    fresh = {f["dataset"]: f for f in freshness(catalog, now)}
    with catalog.session() as s:
        last = _last_runs(s)
        out = []
        for src in s.scalars(sa.select(Source).order_by(Source.id)):
            r, f = last.get(src.id), fresh.get(src.dataset_id, {})
            out.append({"source": src.id, "dataset": src.dataset_id, "connector": src.connector_kind,
                        "department": f.get("department"), "update_cycle": f.get("update_cycle"),
                        "freshness": f.get("state"), "last_refresh": f.get("last_refresh"),
                        "due_at": f.get("due_at"),
                        "last_run": r.run_key if r else None, "result": r.state if r else None,
                        "started_at": _iso(_aware(r.started_at)) if r else None,
                        "finished_at": _iso(_aware(r.finished_at)) if r else None,
                        "extracted": r.extracted if r else None, "accepted": r.accepted if r else None,
                        "quarantined": r.quarantined if r else None, "version": r.version if r else None,
                        "message": r.message if r else None,
                        "backlog": f.get("backlog", 0), "backlog_oldest": f.get("backlog_oldest")})
        return out


def quality_trend(catalog, dataset: str, limit: int = 30) -> list[dict]:
    """The dataset's recent runs with counts, oldest first: the share of rows that passed."""
    with catalog.session() as s:
        runs = s.scalars(sa.select(Run).join(Source, Source.id == Run.source_id)
                         .where(Source.dataset_id == dataset, Run.extracted.is_not(None))
                         .order_by(Run.id.desc()).limit(limit)).all()
    return [{"run_id": r.id, "run_key": r.run_key, "source": r.source_id, "state": r.state,
             "at": _iso(_aware(r.finished_at or r.started_at)), "extracted": r.extracted,
             "accepted": r.accepted, "quarantined": r.quarantined,
             "pass_share": round(r.accepted / r.extracted, 4) if r.extracted else None}
            for r in reversed(runs)]


def _fresh_throughout(refreshes: list[datetime], update_cycle: str, start: datetime,
                      end: datetime, new: bool = False) -> bool:
    """True when every moment of [start, end] lay within one cycle after some refresh; a
    dataset `new` at `start` has its first cycle to be refreshed."""
    c = cycle(update_cycle)
    before = [t for t in refreshes if t <= start]
    covered = max(before) + c if before else (start + c if new else None)
    if covered is None or covered < start:
        return False
    for t in sorted(t for t in refreshes if start < t <= end):
        if t > covered:
            return False             # a gap inside the period
        covered = max(covered, t + c)
    return covered >= end


def scorecards(catalog, period: str = "month", now: datetime | None = None) -> list[dict]:
    """Per department over the last day, week or month (30 days), ending now."""
    if period not in PERIODS:
        raise UnknownName("period", period, PERIODS)
    end = _now(now)
    start = end - PERIODS[period]
    with catalog.session() as s:
        owner = {d.id: d for d in s.scalars(sa.select(Dataset))}
        names = {reg.get("department"): reg.get("department_name")
                 for reg in s.scalars(sa.select(Source.registration))}
        refreshes = defaultdict(list)
        for ds, t in s.execute(sa.select(Source.dataset_id, Run.finished_at)
                               .join(Run, Run.source_id == Source.id)
                               .where(Run.state.in_(REFRESHED), Run.finished_at <= end)):
            refreshes[ds].append(_aware(t))
        passed = defaultdict(lambda: [0, 0])
        for ds, acc, ext in s.execute(sa.select(Source.dataset_id, sa.func.sum(Run.accepted),
                                                sa.func.sum(Run.extracted))
                                      .join(Run, Run.source_id == Source.id)
                                      .where(Run.started_at >= start, Run.started_at <= end,
                                             Run.extracted.is_not(None))
                                      .group_by(Source.dataset_id)):
            passed[ds] = [acc or 0, ext or 0]
        backlog = _backlog(s, end)
        consumed, saved = _consumption(s, owner, start, end)
        runs, failed, last_failed = _period_runs(s, start, end)
        objected = _objections(s, start, end)
    cards = defaultdict(lambda: {"datasets": 0, "on_time": 0, "not_due": 0, "accepted": 0, "extracted": 0,
                                 "backlog": 0, "oldest": None, "records_consumed": 0,
                                 "materials_saved": 0, "runs": 0, "runs_failed": 0, "failing": 0})
    for ds, d in owner.items():
        c = cards[d.department]
        c["datasets"] += 1
        created = _aware(d.created_at)
        if ds in last_failed:      # its latest run in the period failed: not on time, however fresh
            c["failing"] += 1
        elif not refreshes[ds] and created + cycle(d.update_cycle) > end:
            c["not_due"] += 1      # registered less than a cycle ago, never refreshed: not yet due
        else:
            c["on_time"] += _fresh_throughout(refreshes[ds], d.update_cycle, max(start, created),
                                              end, new=created > start)
        c["runs"] += runs.get(ds, 0)
        c["runs_failed"] += failed.get(ds, 0)
        c["accepted"] += passed[ds][0]
        c["extracted"] += passed[ds][1]
        n, oldest = backlog.get(ds, (0, None))
        c["backlog"] += n
        if oldest and (c["oldest"] is None or oldest < c["oldest"]):
            c["oldest"] = oldest
        c["records_consumed"] += consumed.get(ds, 0)
        c["materials_saved"] += saved.get(ds, 0)
    return [{"department": dept, "department_name": names.get(dept) or dept, **objected[dept],
             "period": period, "from": times.iso(start), "to": times.iso(end),
             "datasets": c["datasets"], "on_time": c["on_time"], "not_yet_due": c["not_due"],
             "on_time_share": (round(c["on_time"] / (c["datasets"] - c["not_due"]), 4)
                               if c["datasets"] > c["not_due"] else None),
             "rows_checked": c["extracted"], "rows_passed": c["accepted"],
             "quality_pass_share": round(c["accepted"] / c["extracted"], 4) if c["extracted"] else None,
             "backlog": c["backlog"],
             "backlog_oldest_days": round((end - c["oldest"]).total_seconds() / 86400, 1) if c["oldest"] else None,
             "records_consumed": c["records_consumed"], "materials_saved": c["materials_saved"],
             "runs": c["runs"], "runs_failed": c["runs_failed"], "datasets_failing": c["failing"]}
            for dept, c in sorted(cards.items())]


def _objections(s, start: datetime, end: datetime) -> dict[str, dict]:
    """Per source department (its datasets'), objections (数据异议): received (filed in the
    period), resolved in it, of those resolved by their deadline, unresolved and past their
    deadline at the period's end, and the median days from filing to resolution of those
    resolved in the period (None: none was)."""
    out: dict[str, dict] = defaultdict(lambda: {"objections_received": 0, "objections_resolved": 0,
                                                "objections_on_time": 0, "objections_open_overdue": 0,
                                                "objections_median_days": None})
    took = defaultdict(list)
    q = (sa.select(Dataset.department, Objection.filed_at, Objection.due_at, Objection.resolved_at)
         .join(Dataset, Dataset.id == Objection.dataset_id).where(Objection.filed_at <= end))
    for dept, filed, due, resolved in s.execute(q):
        filed, due, resolved = _aware(filed), _aware(due), _aware(resolved)
        c = out[dept]
        c["objections_received"] += filed >= start
        if resolved is not None and start <= resolved <= end:
            c["objections_resolved"] += 1
            c["objections_on_time"] += resolved <= due
            took[dept].append((resolved - filed).total_seconds() / 86400)
        elif (resolved is None or resolved > end) and due < end:
            c["objections_open_overdue"] += 1
    for dept, days in took.items():
        out[dept]["objections_median_days"] = round(median(days), 2)
    return out


def _period_runs(s, start: datetime, end: datetime) -> tuple[dict, dict, set]:
    """Per dataset, the runs started in [start, end], how many of them failed, and the datasets
    whose latest run that ended in the period (held and running runs aside) failed."""
    runs, failed, latest = defaultdict(int), defaultdict(int), {}
    q = (sa.select(Source.dataset_id, Run.id, Run.state).join(Run, Run.source_id == Source.id)
         .where(Run.started_at >= start, Run.started_at <= end).order_by(Run.id))
    for ds, _, state in s.execute(q):
        runs[ds] += 1
        failed[ds] += state == "failed"
        if state == "failed" or state in REFRESHED:
            latest[ds] = state
    return runs, failed, {ds for ds, state in latest.items() if state == "failed"}


def _consumption(s, owner: dict, start: datetime, end: datetime) -> tuple[dict, dict]:
    """Records handed to departments other than the owner (lookups, bundles, materials answered
    with a record) and materials applicants were spared, per dataset, from the audit log."""
    consumed, saved = defaultdict(int), defaultdict(int)
    q = (sa.select(AuditEntry.department, AuditEntry.action, AuditEntry.datasets, AuditEntry.detail)
         .where(AuditEntry.at >= start, AuditEntry.at <= end, AuditEntry.outcome == "allowed",
                AuditEntry.action.in_((*CONSUMING, "materials"))))
    for dept, action, datasets, detail in s.execute(q.execution_options(yield_per=5000)):
        detail = detail or {}
        if action == "materials":      # each material answered "held" came with its record
            counts = detail.get("saved") or {}
            for ds, n in counts.items():
                saved[ds] += n
        else:
            counts = detail.get("by_dataset") or dict.fromkeys(datasets or (), 1)
        for ds, n in counts.items():
            if ds in owner and owner[ds].department != dept:
                consumed[ds] += n
    return consumed, saved


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600, 1)


STATUS_KEYS = ("source", "dataset", "connector", "department", "update_cycle", "freshness",
               "last_refresh", "due_at", "last_run", "result", "started_at", "finished_at",
               "extracted", "accepted", "quarantined", "version", "message", "backlog",
               "backlog_oldest")


def with_registrations(rows: list[dict], scan) -> list[dict]:
    """Source rows (`source_status`) with their registration file and, for a file that could
    not be loaded (registration.scan), why: on the row of its source when the catalogue
    knows the source and no other file registers it, else on a row of its own."""
    problems = {p.source: p for p in scan.problems if p.source and p.source not in scan.registrations}
    known = {r["source"] for r in rows}
    for r in rows:
        reg, p = scan.registrations.get(r["source"]), problems.get(r["source"])
        r["registration_file"] = reg.source_file if reg else p.path if p else None
        r["registration_error"] = p.reason if p and not reg else None
    blank = dict.fromkeys(rows[0] if rows else STATUS_KEYS)
    for p in scan.problems:
        if p.source in known and p is problems.get(p.source):
            continue
        rows.append({**blank, "source": p.source, "registration_file": p.path,
                     "registration_error": p.reason})
    return rows
