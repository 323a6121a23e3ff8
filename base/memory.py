"""Freed memory handed back to the system between a run's stages and a publish's steps, so
that the next step's peak does not stand on the last one's: Arrow's allocator keeps freed pages for reuse, and
glibc's malloc keeps freed blocks of numpy arrays and SQLite pages in its heaps."""
from __future__ import annotations

import ctypes
import gc
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pyarrow as pa

T = TypeVar("T")

_malloc_trim: Any
try:
    _malloc_trim = ctypes.CDLL(None).malloc_trim      # glibc's; absent elsewhere
except (AttributeError, OSError):
    _malloc_trim = None


def use_system_allocator() -> bool:
    """Arrow's buffers from malloc, not its bundled mimalloc (unless ARROW_DEFAULT_MEMORY_POOL
    chooses): mimalloc kept the pages freed on worker threads, which release() cannot reach
    (its collect is the calling thread's), ~100-200 MB left resident after each stage of a 1M-row
    run; malloc_trim hands back every arena's. True if the pool was switched."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL") or pa.default_memory_pool().backend_name != "mimalloc":
        return False
    pa.set_memory_pool(pa.system_memory_pool())
    return True


use_system_allocator()


def _trim() -> None:
    if _malloc_trim is not None:
        _malloc_trim(0)


def release() -> None:
    """Freed pages back: Arrow's memory pool's, and malloc's (glibc: malloc_trim)."""
    pa.default_memory_pool().release_unused()
    _trim()


def released(batches: Iterable[T], every: int = 8) -> Iterator[T]:
    """`batches` as they are, with release() after every `every` of them."""
    for i, batch in enumerate(batches, 1):
        yield batch
        if i % every == 0:
            release()


@contextmanager
def settled_heap() -> Iterator[None]:
    """The objects alive now (modules, GX's and SQLAlchemy's) left out of the collector's full
    passes while many new ones are made: each full pass over a 1M-row run's validation walked
    the whole heap (~0.18 s, two of them). Put back after. Inside another's (or Airflow's
    gc.freeze): nothing done, theirs to put back."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
