"""Benchmarks: `./run bench NAME [--rows N] [--sample N]`. Each prints figures; none asserts."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

BENCHES = {  # name -> (module, what it measures)
    "path": ("bench.path", "the whole path vs the naive baseline (issue 2)"),
    "extract": ("bench.extract", "extraction vs pandas.read_sql and Arrow-native readers (issue 4)"),
    "validate": ("bench.validate", "the quality step vs stock GX with COMPLETE results (issue 5)"),
    "publish": ("bench.publish", "publishing vs json.dumps + a signature per record (issue 6)"),
    "publish-stage": ("bench.publish_stage", "the publish stage alone into SQLite and PostgreSQL catalogues"),
    "api": ("bench.api", "lookups over HTTP with auth, purpose check and audit (issue 7)"),
    "incremental": ("bench.incremental", "runs with 1 %, 0.1 % and 0 % changed vs a full run (issue 17)"),
    "delta-publish": ("bench.delta_publish", "a Delta run's version: whole state vs in proportion to the change"),
    "notices": ("bench.notices", "change notices: fan-out and delivery of a changed version to subscribers "
                                 "vs its publish (issue 20)"),
    "federation": ("bench.federation", "mirroring a dataset to a peer exchange: the first sync and one after "
                                       "a 1 %-changed version vs the origin's publish (issue 19)"),
    "scale": ("bench.scale", "one large SQL source on Celery workers: one vs two, file:// vs S3 (issue 16)"),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench", description=__doc__)
    p.add_argument("name", nargs="?", default="path", choices=sorted(BENCHES),
                   help="; ".join(f"{k}: {v[1]}" for k, v in BENCHES.items()).replace("%", "%%"))
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--sample", type=int, default=50_000, help="rows for per-row baselines")
    p.add_argument("--bundles", type=int, default=1000, help="publish: bundles to verify")
    p.add_argument("--seconds", type=float, default=15, help="api: load duration per backend")
    p.add_argument("--workers", type=int, default=1, help="api: uvicorn worker processes")
    p.add_argument("--conns", type=int, default=8, help="api: concurrent keep-alive connections")
    p.add_argument("--backend", choices=["sqlite", "postgresql"], action="append",
                   help="api, publish-stage: catalogue backends (default: both)")
    p.add_argument("--trials", type=int, default=3, help="publish-stage: trials per backend (min taken)")
    p.add_argument("--code", action="append",
                   help="publish-stage: checkouts to time, interleaved (default: this one)")
    p.add_argument("--changed", type=int, default=10_000, help="notices: records changed at the source")
    p.add_argument("--subscribers", type=int, default=100, help="notices: departments subscribed")
    args = p.parse_args(argv)
    # the benchmarks generate their silos in bench/out: one more root file silos may be under
    out = str(Path(__file__).resolve().parent / "out")
    os.environ["EXCHANGE_SILO_ROOTS"] = os.pathsep.join(filter(None, [os.environ.get("EXCHANGE_SILO_ROOTS"), out]))
    module = importlib.import_module(BENCHES[args.name][0])
    if args.name == "api":
        return module.main(args.rows, args.seconds, args.workers, conns=args.conns,
                           backends=args.backend or ("sqlite", "postgresql"))
    if args.name == "publish-stage":
        return module.main(args.rows, args.trials, args.backend or ("sqlite", "postgresql"),
                           args.code or (str(module.ROOT),))
    if args.name in ("extract", "validate", "scale", "incremental", "delta-publish", "federation"):
        return module.main(args.rows)
    if args.name == "notices":
        return module.main(args.rows, args.changed, args.subscribers)
    if args.name == "publish":
        return module.main(args.rows, args.sample, args.bundles)
    return module.main(args.rows, args.sample)


if __name__ == "__main__":
    sys.exit(main())
