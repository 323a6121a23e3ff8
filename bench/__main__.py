"""Benchmarks: `./run bench [path|extract] [--rows N] [--sample N]`. Prints figures; asserts nothing."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench")
    p.add_argument("name", nargs="?", default="path", choices=["path", "extract"])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--sample", type=int, default=50_000, help="rows for the naive baseline")
    args = p.parse_args(argv)
    if args.name == "extract":
        from bench import extract
        return extract.main(args.rows)
    from bench import path
    return path.main(args.rows, args.sample)


if __name__ == "__main__":
    sys.exit(main())
