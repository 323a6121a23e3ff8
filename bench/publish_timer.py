"""The publish stage of a pipeline run, timed from outside: stages.publish wrapped while the
`with` block runs (bench/notices.py, bench/federation.py)."""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def timed_publish() -> Iterator[dict]:
    """Yields {"publish_s": seconds in stages.publish (summed over calls), "published_at": the
    wall time (time.time) the last publish returned}."""
    from exchange import stages

    timed = {"publish_s": 0.0, "published_at": None}
    publish = stages.publish

    def publish_timed(*a, **kw):
        t0 = time.perf_counter()
        try:
            return publish(*a, **kw)
        finally:
            timed["publish_s"] += time.perf_counter() - t0
            timed["published_at"] = time.time()

    stages.publish = publish_timed
    try:
        yield timed
    finally:
        stages.publish = publish
