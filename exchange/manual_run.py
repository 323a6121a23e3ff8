"""A source's whole path run now in this process (`exchange run SOURCE`: a steward's check;
Airflow runs it on its schedule)."""
from __future__ import annotations

from collections.abc import Callable

from base import clock
from catalog.ledger.run_owner import owning
from exchange import stages

STEPS = [("extract", stages.extract), ("conform", stages.conform),
         ("validate", stages.validate), ("publish", stages.publish)]


def manual_key() -> str:
    return "manual_" + clock.now().strftime("%Y%m%dT%H%M%S")


def run_source(source: str, key: str, before: Callable[[str], None] = lambda name: None,
               after: Callable[[str], None] = lambda name: None) -> dict:
    """Each stage in turn, the run owned by this process; before(stage) and after(stage) for
    progress. Returns the publish stage's result with the source and run key."""
    out = {}
    with owning():
        for name, step in STEPS:
            before(name)
            out[name] = step(source, key)
            after(name)
    return {"source": source, "run_key": key, **out["publish"]}
