"""Signing keys: `exchange keys create | list | rotate | reencrypt | compromise KID [--at TIME]`.
Only these commands make keys: a run without one fails (exit 2) and says to run `keys create`."""
from __future__ import annotations

import argparse
import datetime as dt
import json

from base.errors import ConfigError
from base.i18n import both, t
from cli import cell, table


def _keys():
    from exchange import signing_keys  # lazy: CLI start (the catalogue imports pyarrow)
    return signing_keys


def cmd_create(args) -> int:
    kid = _keys().create_signing_key()
    print(json.dumps({"active": kid}) if args.json else t("cli.msg.key_created", kid=kid))
    return 0


def cmd_reencrypt(args) -> int:
    done = _keys().reencrypt()
    print(json.dumps({"reencrypted": done}) if args.json else
          t("cli.msg.reencrypted", n=len(done),
            names=f"：{', '.join(done)}" if done else t("cli.msg.reencrypted_none")))
    return 0


def cmd_list(args) -> int:
    rows = _keys().key_list()
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        table(both("cli.title.keys"), rows, ["kid", "status", "created_at", "compromised_at", "heads_signed"],
              {"status": "key"})
    return 0


def cmd_rotate(args) -> int:
    new, old = _keys().rotate()
    print(json.dumps({"active": new, "retired": old}) if args.json
          else t("cli.msg.key_rotated", new=new, old=old))
    return 0


def _when(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(t("cli.error.at_iso", text=text)) from None
    if when.tzinfo is None:
        raise ConfigError(t("cli.error.at_zone", text=text))
    return when


def cmd_compromise(args) -> int:
    entry, active = _keys().compromise(args.kid, _when(args.at))
    print(json.dumps(entry) if args.json else
          t("cli.msg.key_compromised", kid=args.kid, at=cell(entry["compromised_at"]), active=active))
    return 0


def register(add) -> None:
    sp = add("keys", lambda a: a.keys_func(a), both("cli.help.keys"))
    sub = sp.add_subparsers(dest="keys_command", required=True)
    for name, func in (("create", cmd_create), ("list", cmd_list), ("rotate", cmd_rotate),
                       ("reencrypt", cmd_reencrypt), ("compromise", cmd_compromise)):
        help = both(f"cli.help.keys_{name}")
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=both("cli.arg.json"))
        p.set_defaults(keys_func=func)
        if name == "compromise":
            p.add_argument("kid")
            p.add_argument("--at", help=both("cli.arg.at_compromise"))
