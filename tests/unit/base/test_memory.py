"""base/memory.py: freed memory handed back between a run's steps."""
from __future__ import annotations

import gc

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from base import memory


def test_released_passes_every_batch_on_in_order_and_releases_every_few(monkeypatch):
    calls: list[int] = []
    seen: list[int] = []
    monkeypatch.setattr(memory, "release", lambda: calls.append(len(seen)))
    for b in memory.released(iter(range(10)), every=4):
        seen.append(b)
    assert seen == list(range(10)) and calls == [4, 8]     # after the 4th and the 8th


def test_release_leaves_live_memory_alone():
    kept = pc.multiply(pa.array(np.arange(1_000_000)), 2)       # in Arrow's pool
    garbage = pc.multiply(pa.array(np.arange(2_000_000)), 2)
    del garbage
    memory.release()
    assert kept.to_numpy()[-1] == 1_999_998 and pa.default_memory_pool().bytes_allocated() >= kept.nbytes


def test_arrow_allocates_from_malloc_unless_the_environment_chooses(monkeypatch):
    import os

    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        assert pa.default_memory_pool().backend_name == "system"     # switched when base.memory was imported
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "mimalloc")
    assert memory.use_system_allocator() is False


def test_settled_heap_freezes_the_objects_alive_and_puts_them_back(monkeypatch):
    # the count itself moves when a frozen object is freed meanwhile: the calls are what is checked
    calls: list[str] = []
    freeze, unfreeze = gc.freeze, gc.unfreeze
    monkeypatch.setattr(gc, "freeze", lambda: (calls.append("freeze"), freeze())[1])
    monkeypatch.setattr(gc, "unfreeze", lambda: (calls.append("unfreeze"), unfreeze())[1])
    assert gc.get_freeze_count() == 0
    with memory.settled_heap():
        assert calls == ["freeze"] and gc.get_freeze_count() > 0
        with memory.settled_heap():          # inside another: left to the outer one
            pass
        assert calls == ["freeze"] and gc.get_freeze_count() > 0
    assert calls == ["freeze", "unfreeze"] and gc.get_freeze_count() == 0


def test_settled_heap_leaves_a_freeze_made_before_it(monkeypatch):
    gc.freeze()
    try:
        calls: list[str] = []
        monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
        monkeypatch.setattr(gc, "unfreeze", lambda: calls.append("unfreeze"))
        with memory.settled_heap():
            pass
        assert calls == [] and gc.get_freeze_count() > 0
    finally:
        monkeypatch.undo()
        gc.unfreeze()
