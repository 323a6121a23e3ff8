"""exchange demo."""
from __future__ import annotations


def cmd_demo(args) -> int:
    from demo.runner import run_demo  # lazy: CLI start (the demo imports pyarrow, the catalogue)
    return run_demo(rows=args.rows, as_json=args.json, departments=not args.only_sqlite)


def register(add) -> None:
    sp = add("demo", cmd_demo, "make a demo silo, run its DAG under Airflow, print a summary")
    sp.add_argument("--rows", type=int, default=10_000)
    sp.add_argument("--only-sqlite", action="store_true",
                    help="only the market-regulation SQLite source (no database servers needed)")
