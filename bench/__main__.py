"""Benchmarks: `./run bench [path|publish|api] [--rows N] [--sample N]`. Prints figures; asserts nothing."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench")
    p.add_argument("name", nargs="?", default="path", choices=["path", "publish", "api"])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--sample", type=int, default=50_000, help="rows for the naive baseline")
    p.add_argument("--bundles", type=int, default=1000, help="publish: bundles to verify")
    p.add_argument("--seconds", type=float, default=15, help="api: load duration per backend")
    p.add_argument("--workers", type=int, default=1, help="api: uvicorn worker processes")
    p.add_argument("--conns", type=int, default=8, help="api: concurrent keep-alive connections")
    p.add_argument("--backend", choices=["sqlite", "postgresql"], action="append",
                   help="api: catalogue backends (default: both)")
    args = p.parse_args(argv)
    if args.name == "api":
        from bench import api
        return api.main(args.rows, args.seconds, args.workers, conns=args.conns,
                        backends=args.backend or ("sqlite", "postgresql"))
    if args.name == "publish":
        from bench import publish
        return publish.main(args.rows, args.sample, args.bundles)
    from bench import path
    return path.main(args.rows, args.sample)


if __name__ == "__main__":
    sys.exit(main())
