"""The quarantine queue of a dataset, a steward's review of its rows, and approving a run that
a quality gate held (`exchange quarantine`, `exchange approve`)."""
from __future__ import annotations

from collections import Counter

from base.settings import get_settings
from catalog.ledger.run_owner import owning
from exchange import stages
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


def approve(source: str, run_key: str, by: str, note: str, publish: bool = True) -> dict:
    """Let a held run publish (recorded as approved by `by`); publish it now unless told not to."""
    run = open_ledger().approve_run(source, run_key, by, note)
    result = {"source": source, "run_key": run_key, "approved_by": by, "held_because": run.message}
    if publish:
        with owning():                        # the run is this process's while it publishes
            result.update(stages.publish(source, run_key))
    return result
