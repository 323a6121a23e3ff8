"""exchange demo."""
from __future__ import annotations


def cmd_demo(args) -> int:
    from exchange.demo import run_demo
    return run_demo(rows=args.rows, as_json=args.json)


def register(add) -> None:
    sp = add("demo", cmd_demo, "make a demo silo, run its DAG under Airflow, print a summary")
    sp.add_argument("--rows", type=int, default=10_000)
