"""Change notices: a department's subscriptions (asked as the department, under the API's
rules), the operator's view of the notices owed, and a delivery pass now."""
from __future__ import annotations

import argparse
import os

from base.i18n import both, t
from cli import emit


def _requests():
    from exchange import department_requests  # lazy: CLI start (the catalogue imports pyarrow)
    return department_requests


def _who(args) -> tuple:
    return args.key or os.environ.get("EXCHANGE_API_KEY"), args.department, args.purpose


def cmd_sub_add(args) -> int:
    sub = _requests().subscribe(*_who(args), dataset=args.dataset, holder_id=args.holder, days=args.days)
    emit(args, sub if args.json else t("cli.msg.subscribed", id=sub["id"], what=sub["dataset"] or sub["holder"],
                                       expires=sub["expires_at"]))
    return 0


def cmd_sub_list(args) -> int:
    emit(args, _requests().subscriptions(*_who(args)), both("cli.title.subscriptions"),
         ["id", "kind", "dataset", "holder", "purpose", "expires_at"])
    return 0


def cmd_sub_remove(args) -> int:
    _requests().unsubscribe(*_who(args), args.id)
    emit(args, {"removed": args.id} if args.json else t("cli.msg.unsubscribed", id=args.id))
    return 0


def cmd_notices_list(args) -> int:
    from catalog.serving.notices import NoticeBook
    from exchange.catalogue import open_catalog  # lazy: CLI start

    rows = NoticeBook(open_catalog().engine).listing(args.department, args.state, args.limit)
    emit(args, rows, both("cli.title.notices"),
         ["seq", "department", "state", "type", "record_id", "attempts", "next_attempt_at", "last_error"],
         {"state": "notice"})
    return 0


def cmd_notices_deliver(args) -> int:
    from exchange.notifying import sweep  # lazy: CLI start (the catalogue, the signing key)

    out = sweep()
    emit(args, out if args.json else t("cli.msg.notices_delivered", **out))
    return 0


def _consumer(p) -> None:
    p.add_argument("--key", help=both("cli.arg.key"))
    p.add_argument("--department", help=both("cli.arg.department"))
    p.add_argument("--purpose", help=both("cli.arg.purpose"))


def register(add) -> None:
    sp = add("subscriptions", lambda a: a.sub_func(a), both("cli.help.subscriptions"))
    sub = sp.add_subparsers(dest="subscriptions_command", required=True)
    p = sub.add_parser("add", help=both("cli.help.subscriptions_add"), description=both("cli.help.subscriptions_add"))
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--dataset", help=both("cli.arg.sub_dataset"))
    what.add_argument("--holder", help=both("cli.arg.sub_holder"))
    p.add_argument("--days", type=int, default=30, help=both("cli.arg.sub_days"))
    p.set_defaults(sub_func=cmd_sub_add)
    p2 = sub.add_parser("list", help=both("cli.help.subscriptions_list"),
                        description=both("cli.help.subscriptions_list"))
    p2.set_defaults(sub_func=cmd_sub_list)
    p3 = sub.add_parser("remove", help=both("cli.help.subscriptions_remove"),
                        description=both("cli.help.subscriptions_remove"))
    p3.add_argument("id", type=int)
    p3.set_defaults(sub_func=cmd_sub_remove)
    for each in (p, p2, p3):
        _consumer(each)
        each.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=both("cli.arg.json"))

    sp = add("notices", lambda a: a.sub_func(a), both("cli.help.notices"))
    sub = sp.add_subparsers(dest="notices_command", required=True)
    p = sub.add_parser("list", help=both("cli.help.notices_list"), description=both("cli.help.notices_list"))
    p.add_argument("--department")
    p.add_argument("--state", choices=["pending", "delivered", "dead", "withheld"])
    p.add_argument("--limit", type=int, default=200, help=both("cli.arg.page_limit"))
    p.set_defaults(sub_func=cmd_notices_list)
    p2 = sub.add_parser("deliver", help=both("cli.help.notices_deliver"), description=both("cli.help.notices_deliver"))
    p2.set_defaults(sub_func=cmd_notices_deliver)
    for each in (p, p2):
        each.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=both("cli.arg.json"))
