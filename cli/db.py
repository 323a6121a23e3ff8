"""The catalogue's schema: `exchange db upgrade | current`. Upgrading is the explicit step
before machines start against a shared catalogue (PostgreSQL or MariaDB under an executor that
runs tasks on other machines); safe to run from several machines at once."""
from __future__ import annotations

import argparse
import json

from base.i18n import both, t


def _catalogue():
    from exchange import catalogue  # lazy: CLI start (the catalogue imports pyarrow)
    return catalogue


def cmd_upgrade(args) -> int:
    done = _catalogue().upgrade_catalogue()
    if args.json:
        print(json.dumps(done))
    elif done["upgraded"]:
        print(t("cli.msg.db_upgraded", catalogue=done["catalogue"], old=done["from"] or t("cli.msg.db_empty"),
                new=done["to"]))
    else:
        print(t("cli.msg.db_already", catalogue=done["catalogue"], new=done["to"]))
    return 0


def cmd_current(args) -> int:
    state = _catalogue().catalogue_schema()
    if args.json:
        print(json.dumps(state))
    elif state["at_head"]:
        print(t("cli.msg.db_at_head", current=state["current"], catalogue=state["catalogue"]))
    else:
        print(t("cli.msg.db_behind", current=state["current"] or t("cli.msg.db_empty"),
                catalogue=state["catalogue"], head=state["head"]))
    return 0


def register(add) -> None:
    sp = add("db", lambda a: a.db_func(a), both("cli.help.db"))
    sub = sp.add_subparsers(dest="db_command", required=True)
    for name, func in (("upgrade", cmd_upgrade), ("current", cmd_current)):
        help = both(f"cli.help.db_{name}")
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=both("cli.arg.json"))
        p.set_defaults(db_func=func)
