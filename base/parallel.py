"""Ordered, bounded parallel map over batches (Arrow kernels release the GIL)."""
from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def ordered_map(fn: Callable[[T], R], items: Iterable[T], ahead: int | None = None) -> Iterator[R]:
    """fn over items on a thread pool, results in input order, at most `ahead` in flight."""
    n = workers()
    if n == 1:
        yield from map(fn, items)
        return
    ahead = ahead or n + 1
    with ThreadPoolExecutor(max_workers=n) as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
