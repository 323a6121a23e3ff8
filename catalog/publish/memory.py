"""Freed memory handed back to the system between a publish's steps, so that the next step's
peak does not stand on the last one's: Arrow's allocator keeps freed pages for reuse, and
glibc's malloc keeps freed blocks of numpy arrays and SQLite pages in its heaps."""
from __future__ import annotations

import ctypes
import ctypes.util

import pyarrow as pa

_libc = None


def _trim() -> None:
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        _libc = ctypes.CDLL(name) if name else False
    trim = getattr(_libc, "malloc_trim", None) if _libc else None
    if trim is not None:          # glibc only
        trim(0)


def release() -> None:
    """Freed pages back: Arrow's memory pool's, and malloc's (glibc: malloc_trim)."""
    pa.default_memory_pool().release_unused()
    _trim()


def released(batches, every: int = 8):
    """`batches` as they are, with release() after every `every` of them."""
    for i, batch in enumerate(batches, 1):
        yield batch
        if i % every == 0:
            release()
