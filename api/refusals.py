"""Refusals that anyone can cause at any rate are counted, not written one by one.

A refusal of a client that is not identified (department `-`: no valid key, an unknown path, a
body too large) or that is throttled (429) is keyed by client address, outcome and department.
The first of a key in a window (EXCHANGE_API_REFUSAL_WINDOW seconds) is written at once (its
detail has the client and `count: 1`); the rest are counted and written as one entry (action `refusals`, `count`: how
many, `from`/`to`, the actions and reasons) when the window closes or the server stops. One
client sending thousands of requests a second thus writes two entries a minute, and the counts
add up to its requests. Refusals of identified departments (400, 403, 404, 422) are written
each, as they are.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from catalog.serving import audit

MAX_REASONS = 8        # distinct reasons kept in a summary (a revoked key's id is in its reason)


def counted(row: dict) -> bool:
    """Is this entry a refusal that is aggregated?"""
    outcome = row["outcome"]
    return outcome.startswith("refused:") and (row["department"] == "-" or outcome == "refused:429")


def _with_detail(row: dict, **extra) -> dict:
    out = {**row, "detail": {**(row.get("detail") or {}), **extra}}
    out["_body"] = audit.body_bytes(out)
    return out


@dataclass
class _Window:
    opened: float
    first_at: datetime | None = None
    last_at: datetime | None = None
    count: int = 0
    actions: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)


class RefusalCounter:
    """In one process (each worker of `serve --workers N` counts its own)."""

    def __init__(self, window: float = 60.0, clock=time.monotonic):
        self.window, self.clock = window, clock
        self._open: dict[tuple[str, str, str], _Window] = {}

    def admit(self, row: dict, client: str) -> dict | None:
        """The entry to write now (the first of its window), or None: counted for the summary."""
        key, now = (client, row["outcome"], row["department"]), self.clock()
        w = self._open.get(key)
        if w is None or now - w.opened >= self.window:
            self._open[key] = _Window(now)
            return _with_detail(row, client=client, count=1)
        w.count += 1
        w.first_at = w.first_at or row["at"]
        w.last_at = row["at"]
        w.actions[row["action"]] += 1
        reason = (row.get("detail") or {}).get("reason") or ""
        if reason in w.reasons or len(w.reasons) < MAX_REASONS:
            w.reasons[reason] += 1
        else:
            w.reasons["(other reasons)"] += 1
        return None

    def next_close(self) -> float | None:
        """Seconds until the first open window closes (None: none is open)."""
        if not self._open:
            return None
        return max(0.0, min(w.opened for w in self._open.values()) + self.window - self.clock())

    def closed(self, everything: bool = False) -> list[dict]:
        """The summary entries of the windows that have closed (every window: `everything`),
        which are then forgotten. Windows that counted nothing beyond their first give none."""
        now, out = self.clock(), []
        for key, w in list(self._open.items()):
            if not everything and now - w.opened < self.window:
                continue
            del self._open[key]
            if w.count:
                out.append(self._summary(key, w))
        return out

    @staticmethod
    def _summary(key, w: _Window) -> dict:
        client, outcome, department = key
        return audit.entry(department=department, purpose="-", action="refusals", outcome=outcome,
                           at=w.last_at,
                           detail={"client": client, "count": w.count, "from": audit._at_text(w.first_at),
                                   "to": audit._at_text(w.last_at), "actions": dict(w.actions),
                                   "reasons": dict(w.reasons)})
