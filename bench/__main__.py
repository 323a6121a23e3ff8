"""Benchmarks: `./run bench [path|publish|validate] [--rows N] [--sample N]`. Prints figures; asserts nothing."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench")
    p.add_argument("name", nargs="?", default="path", choices=["path", "publish", "validate"])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--sample", type=int, default=50_000, help="rows for the naive baseline")
    p.add_argument("--bundles", type=int, default=1000, help="publish: bundles to verify")
    args = p.parse_args(argv)
    if args.name == "publish":
        from bench import publish
        return publish.main(args.rows, args.sample, args.bundles)
    if args.name == "validate":
        from bench import validate
        return validate.main(args.rows)
    from bench import path
    return path.main(args.rows, args.sample)


if __name__ == "__main__":
    sys.exit(main())
