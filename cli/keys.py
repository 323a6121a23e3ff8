"""Signing keys: `exchange keys create | list | rotate | reencrypt | compromise KID [--at TIME]`.
Only these commands make keys: a run without one fails (exit 2) and says to run `keys create`."""
from __future__ import annotations

import argparse
import datetime as dt
import json

from base.errors import ConfigError
from cli import table


def _keys():
    from exchange import signing_keys  # lazy: CLI start (the catalogue imports pyarrow)
    return signing_keys


def cmd_create(args) -> int:
    kid = _keys().create_signing_key()
    print(json.dumps({"active": kid}) if args.json else
          f"key {kid} now signs; back up the key directory with its passphrase, and give every "
          f"other machine that publishes this key: its {kid}.pem as EXCHANGE_SIGNING_KEY, "
          "EXCHANGE_SIGNING_KEY_FILE or the Airflow Variable exchange_signing_key")
    return 0


def cmd_reencrypt(args) -> int:
    done = _keys().reencrypt()
    print(json.dumps({"reencrypted": done}) if args.json else
          f"re-encrypted {len(done)} key file(s) with PBKDF2-HMAC-SHA256 at 600,000 rounds"
          + (f": {', '.join(done)}" if done else " (all were already)"))
    return 0


def cmd_list(args) -> int:
    rows = _keys().key_list()
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        table("Signing keys", rows, ["kid", "status", "created_at", "compromised_at", "heads_signed"])
    return 0


def cmd_rotate(args) -> int:
    new, old = _keys().rotate()
    print(json.dumps({"active": new, "retired": old}) if args.json
          else f"key {new} now signs; {old} is retired and stays in the JWKS for verification. "
          f"Give every other machine that publishes the new key ({new}.pem): they refuse to sign "
          "with a retired one")
    return 0


def _when(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--at {text!r} is not an ISO 8601 time like 2026-11-21T20:00:00Z") from None
    if t.tzinfo is None:
        raise ConfigError(f"--at {text!r} has no time zone: add Z or +08:00")
    return t


def cmd_compromise(args) -> int:
    entry, active = _keys().compromise(args.kid, _when(args.at))
    print(json.dumps(entry) if args.json else
          f"key {args.kid} is compromised from {entry['compromised_at']}: heads it signed before then still "
          f"verify (listed in key-status.jws); later ones do not. Active key: {active}")
    return 0


def register(add) -> None:
    sp = add("keys", lambda a: a.keys_func(a), "signing keys: create, list, rotate, reencrypt, compromise")
    sub = sp.add_subparsers(dest="keys_command", required=True)
    for name, func, help in (("create", cmd_create, "the first signing key (once; refused if there is one)"),
                             ("list", cmd_list, "keys, their status and heads signed"),
                             ("rotate", cmd_rotate, "a new key signs every later version"),
                             ("reencrypt", cmd_reencrypt, "rewrite key files of an older exchange "
                                                          "with the current KDF"),
                             ("compromise", cmd_compromise, "stop trusting a key from a given time")):
        p = sub.add_parser(name, help=help)
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
        p.set_defaults(keys_func=func)
        if name == "compromise":
            p.add_argument("kid")
            p.add_argument("--at", help="compromised from this time (ISO 8601, default now)")
