"""Objections to shared records (数据异议) for the source's stewards: `exchange objections`."""
from __future__ import annotations

import argparse
import getpass

from base.i18n import both, t, term_both
from cli import emit

COLUMNS = ["id", "record_id", "dataset", "department", "state", "filed_at", "due_at", "overdue", "reason"]
FILTERS = [(("--dataset",), {}), (("--department",), {"help": both("cli.arg.objection_department")}),
           (("--state",), {"help": both("cli.arg.objection_state")}),
           (("--overdue",), {"action": "store_true", "help": both("cli.arg.objection_overdue")})]


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "steward"


def cmd_list(args) -> int:
    from exchange import objections  # lazy: CLI start (the catalogue)

    state = getattr(args, "state", None) or "unresolved"
    rows = objections.find(getattr(args, "dataset", None), getattr(args, "department", None),
                           None if state == "all" else state, getattr(args, "overdue", False))
    shown = rows if args.json else [{**o, "reason": o["reason"][:80]} for o in rows]
    emit(args, shown, both("cli.title.objections"), COLUMNS, {"state": "objection", "overdue": "bool"})
    return 0


def cmd_resolve(args) -> int:
    from exchange import objections  # lazy: CLI start (the catalogue)

    o = objections.resolve(args.id, "corrected" if args.corrected else "upheld", args.reason,
                           args.by or _user())
    extra = (t("cli.msg.objection_correcting") if o["state"] == "correcting" else
             t("cli.msg.objection_corrected", version=o["corrected_version"]) if o["state"] == "corrected" else "")
    emit(args, o if args.json else t("cli.msg.objection_resolved", id=o["id"],
                                      state=term_both("objection", o["state"]), extra=extra))
    return 0


def cmd_check(args) -> int:
    from exchange import objections  # lazy: CLI start (the catalogue)

    raised = objections.check_overdue()
    emit(args, raised if args.json else t("cli.msg.objections_alerted", n=len(raised)))
    return 0


def register(add) -> None:
    sp = add("objections", cmd_list, both("cli.help.objections"))
    for a, kw in FILTERS:
        sp.add_argument(*a, **kw)
    sub = sp.add_subparsers(dest="objections_command")
    json_arg = {"action": "store_true", "default": argparse.SUPPRESS, "help": both("cli.arg.json")}
    p = sub.add_parser("list", help=both("cli.help.objections_list"), description=both("cli.help.objections_list"))
    p.add_argument("--json", **json_arg)
    for a, kw in FILTERS:
        p.add_argument(*a, **{**kw, "default": argparse.SUPPRESS})
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("resolve", help=both("cli.help.objections_resolve"),
                       description=both("cli.help.objections_resolve"))
    p.add_argument("--json", **json_arg)
    p.add_argument("id", type=int)
    outcome = p.add_mutually_exclusive_group(required=True)
    outcome.add_argument("--corrected", action="store_true")
    outcome.add_argument("--upheld", action="store_true")
    p.add_argument("--reason", help=both("cli.arg.objection_reason"))
    p.add_argument("--by", help=both("cli.arg.objection_by"))
    p.set_defaults(func=cmd_resolve)
    p = sub.add_parser("check", help=both("cli.help.objections_check"), description=both("cli.help.objections_check"))
    p.add_argument("--json", **json_arg)
    p.set_defaults(func=cmd_check)
