"""engine.shrink_caches: every idle pooled SQLite connection is told to hand back its page
cache, and the pool keeps the same connections."""
from __future__ import annotations

from catalog.db import engine as db_engine


def test_every_idle_connection_shrinks_and_stays_pooled(tmp_path):
    eng = db_engine._engine(f"sqlite:///{tmp_path / 'c.db'}")
    traces: dict[int, list[str]] = {}
    held = [eng.raw_connection() for _ in range(2)]        # two connections made, then pooled
    for c in held:
        raw = c.driver_connection
        traces[id(raw)] = []
        raw.set_trace_callback(traces[id(raw)].append)
    for c in held:
        c.close()
    assert eng.pool.checkedin() == 2

    db_engine.shrink_caches()

    assert eng.pool.checkedin() == 2                        # none closed, none added
    assert [any("shrink_memory" in s for s in t) for t in traces.values()] == [True, True]
    with eng.connect() as conn:                             # still usable
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    eng.dispose()
