"""The quarantine queue of a dataset, a steward's review of its rows, and approving a run that
a quality gate held (`exchange quarantine`, `exchange approve`)."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import registration
from base.settings import get_settings
from catalog.ledger.run_owner import owning
from exchange import manual_run, stages
from exchange.airflow_api import AirflowNotFound, AirflowUnreachable
from exchange.catalogue import open_catalog, open_ledger
from quality import reasons
from quality.quarantine_store import raw_rows
from schemas.types import all_types


def queue_summary(entries: list[dict], samples: int, ctype=None) -> dict:
    """Counts by state and reason; `reason_texts`: each reason (its machine-readable label, the
    expectation and columns) in words for people (quality/reasons.py)."""
    by_reason = Counter(r for e in entries for r in e["reasons"])
    by_state = Counter(e["state"] for e in entries)
    holding = sum(1 for e in entries if e["state"] == "open" and e.get("held_record_id"))
    return {"rows": len(entries), "by_state": dict(by_state), "holding_published_records": holding,
            "by_reason": dict(by_reason.most_common()),
            "reason_texts": {r: reasons.explain(r, ctype) for r in by_reason},
            "samples": {reason: [e["key"] for e in entries if reason in e["reasons"]][:samples]
                        for reason in by_reason}}


def with_raw_rows(entries: list[dict]) -> None:
    """Each entry's raw silo row, from the quarantine file of the run that last saw it."""
    raws = raw_rows(get_settings().store, entries, lambda source, run: stages.handoff(source, run, "quarantine"))
    for e in entries:
        e["raw"] = raws.get((e["source_id"], e["key"], e["row_hash"]))


def queue(dataset: str, include_resolved: bool, samples: int) -> tuple[list[dict], dict]:
    """(the queue's entries with their raw rows, its summary); NotFound for an unknown dataset."""
    meta = open_catalog().dataset(dataset)      # NotFound (exit 7) naming the known datasets
    entries = open_ledger().quarantine(dataset, include_resolved=include_resolved)
    summary = queue_summary(entries, samples, all_types().get(meta["certificate_type"]))
    with_raw_rows(entries)
    return entries, summary


def review(dataset: str, key: str, by: str, note: str, row: str | None) -> dict:
    return open_ledger().review_quarantine(dataset, key, by, note, row)


def approve(source: str, run_key: str, by: str, note: str, publish: bool = True, *, local: bool = False,
            unpause: bool = False, on_start: Callable[[str], None] = lambda url: None,
            on_change: manual_run.OnChange = lambda s, r: None) -> dict:
    """Let a held run publish (recorded as approved by `by`); publish it now unless told not to.
    A run of an Airflow DAG run (the ledger has its dag_run_id) publishes there: its publish task
    and those after it are cleared, so Airflow runs them again in the same DAG run, followed to
    its end. A run of `exchange run --local` (or with `local`) publishes in this process."""
    ledger = open_ledger()
    held = ledger.get_run(source, run_key)                 # NotFound (exit 7)
    in_airflow = publish and not local and held.dag_run_id is not None
    if in_airflow:                      # before anything is recorded: Airflow answers, the run is there
        dag_id = registration.get(source, get_settings().sources_dir).dag_id
        api = manual_run.client()
        try:
            api.dag_run(dag_id, held.dag_run_id)
            manual_run.ready_dag(api, dag_id, unpause)
        except AirflowUnreachable as exc:
            raise manual_run.unreachable(exc, "--local") from None
        except AirflowNotFound as exc:
            raise AirflowNotFound(f"{exc}; 该运行不在此 Airflow 中 (the run is not in this Airflow): "
                                  "`--local` publishes it in this process") from None
    run = ledger.approve_run(source, run_key, by, note)
    result = {"source": source, "run_key": run_key, "approved_by": by, "held_because": run.message}
    if not publish:
        return result
    if in_airflow:
        api.clear(dag_id, held.dag_run_id, ["publish"], downstream=True)
        on_start(api.run_url(dag_id, held.dag_run_id))
        result.update(manual_run.follow(api, source, dag_id, held.dag_run_id, on_change))
        return result
    with owning():                        # the run is this process's while it publishes
        result.update(stages.publish(source, run_key))
    return result
