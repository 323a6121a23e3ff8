"""SQLite's WAL checkpoints taken off the committing connection. A checkpoint copies the WAL's
pages into the database file and fsyncs it: inside a commit that is most of its time (a 10k-record
version's commit wrote ~35k pages; the API's audit commits took 40-130 ms instead of ~1 ms). Both
writers that care turn their connection's autocheckpoint off and leave a PASSIVE checkpoint
(blocking neither readers nor writers) to a thread named THREAD:
- a version's publish: one checkpoint after its commit (catalog/db/engine.py checkpoint_thread);
- the API's audit appends: one every second (catalog/db/rawdb.py Raw.checkpoint_aside).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("exchange.catalog")
THREAD = "wal-checkpoint"
OFF = "PRAGMA wal_autocheckpoint = 0"
PASSIVE = "PRAGMA wal_checkpoint(PASSIVE)"


def guarded(step: Callable[[], object]) -> None:
    """Run one checkpoint step; a failure is logged, not raised: the next checkpoint (a later
    round's, or the next commit's once autocheckpoint is back) copies the pages instead."""
    try:
        step()
    except Exception:   # noqa: BLE001 - see above
        log.warning("WAL checkpoint failed", exc_info=True)


def start(target: Callable[[], None], *, daemon: bool) -> threading.Thread | None:
    """`target` on a started THREAD thread; None (logged) when no thread is to be had."""
    thread = threading.Thread(target=target, name=THREAD, daemon=daemon)
    try:
        thread.start()
    except RuntimeError:
        log.warning("no thread for the WAL checkpoint", exc_info=True)
        return None
    return thread
