"""The catalogue's schema: `exchange db upgrade | current`. Upgrading is the explicit step
before machines start against a shared catalogue (PostgreSQL or MariaDB under an executor that
runs tasks on other machines); safe to run from several machines at once."""
from __future__ import annotations

import argparse
import json


def _catalogue():
    from exchange import catalogue  # lazy: CLI start (the catalogue imports pyarrow)
    return catalogue


def cmd_upgrade(args) -> int:
    done = _catalogue().upgrade_catalogue()
    if args.json:
        print(json.dumps(done))
    elif done["upgraded"]:
        print(f"upgraded the catalogue ({done['catalogue']}) from revision {done['from'] or 'none (empty)'} "
              f"to {done['to']}")
    else:
        print(f"the catalogue ({done['catalogue']}) is already at revision {done['to']}, the code's head")
    return 0


def cmd_current(args) -> int:
    state = _catalogue().catalogue_schema()
    if args.json:
        print(json.dumps(state))
    elif state["at_head"]:
        print(f"{state['current']} (head): the catalogue ({state['catalogue']}) is up to date")
    else:
        print(f"{state['current'] or 'none (empty)'}: the catalogue ({state['catalogue']}) is behind the "
              f"code's head {state['head']}; run `exchange db upgrade`")
    return 0


def register(add) -> None:
    sp = add("db", lambda a: a.db_func(a), "the catalogue's schema: upgrade, current")
    sub = sp.add_subparsers(dest="db_command", required=True)
    for name, func, help in (("upgrade", cmd_upgrade, "upgrade the catalogue's schema to the code's head "
                                                      "(once before starting machines; safe from several)"),
                             ("current", cmd_current, "the catalogue's schema revision and the code's head")):
        p = sub.add_parser(name, help=help)
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
        p.set_defaults(db_func=func)
