"""exchange demo."""
from __future__ import annotations

from base.i18n import both


def cmd_demo(args) -> int:
    if args.federation:
        from demo.federation import run_federation_demo  # lazy: as below
        return run_federation_demo(as_json=args.json)
    from demo.runner import run_demo  # lazy: CLI start (the demo imports pyarrow, the catalogue)
    return run_demo(rows=args.rows, as_json=args.json, departments=not args.only_sqlite)


def register(add) -> None:
    sp = add("demo", cmd_demo, both("cli.help.demo"))
    sp.add_argument("--rows", type=int, default=10_000, help=both("cli.arg.demo_rows"))
    sp.add_argument("--federation", action="store_true", help=both("cli.arg.demo_federation"))
    sp.add_argument("--only-sqlite", action="store_true", help=both("cli.arg.only_sqlite"))
