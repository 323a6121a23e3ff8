"""Peer exchanges (跨区域互认, issue #19): `exchange peers add|list|remove|sync|cosignatures`.
`peers sync` exits 8 when the peer served something refused, 3 when it could not be reached."""
from __future__ import annotations

import argparse
import contextlib
import getpass
import sys

from base.i18n import both, t, term_both
from cli import emit

COLUMNS = ["name", "url", "keys", "last_sync_at", "last_outcome", "mirrors", "last_error"]
SYNC_COLUMNS = ["dataset", "from", "to", "records", "state", "error"]
COSIG_COLUMNS = ["dataset", "version", "peer", "kid", "cosigned_at", "cosignature"]
EXIT = {"ok": 0, "refused": 8, "failed": 3}


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "operator"


def _get(row, name, default=None):
    return row.get(name, default) if isinstance(row, dict) else getattr(row, name, default)


def key_text(keys) -> str:
    """Pinned keys for people: `kid (status)` each, a compromised one marked."""
    return ", ".join(f"{k['kid']} ({term_both('keystate', k.get('status') or 'active')})"
                     for k in keys or [])


def mirrors_text(mirrors) -> str:
    return ", ".join(f"{_get(m, 'dataset')} v{_get(m, 'version') or '–'} "
                     f"{term_both('mirror', _get(m, 'state'))}" for m in mirrors or [])


def peer_rows(peers) -> list[dict]:
    """Peers as table rows (Peers.list() entries: dicts or rows)."""
    return [{"name": _get(p, "name"), "url": _get(p, "url"), "keys": key_text(_get(p, "keys")),
             "last_sync_at": _get(p, "last_sync_at"),
             "last_outcome": term_both("sync", _get(p, "last_outcome")) if _get(p, "last_outcome") else "",
             "mirrors": mirrors_text(_get(p, "mirrors")), "last_error": (_get(p, "last_error") or "")[:120]}
            for p in peers]


def _quiet(args):
    """With --json, stdout is the JSON alone: what libraries print meanwhile (Airflow's logging,
    set up when the credential's connection is read, writes to stdout) goes to stderr."""
    return contextlib.redirect_stdout(sys.stderr) if getattr(args, "json", False) else contextlib.nullcontext()


def cmd_add(args) -> int:
    from exchange import peers  # lazy: CLI start (the catalogue, requests)

    with _quiet(args):
        p = peers.add(args.name, args.url, args.fingerprint, args.credential, args.by or _user())
    emit(args, p if args.json else t("cli.msg.peer_added", name=args.name, url=args.url.rstrip("/"),
                                     keys=key_text(_get(p, "keys"))))
    return 0


def cmd_list(args) -> int:
    from exchange import peers  # lazy: CLI start

    rows = peers.listing()
    emit(args, rows if args.json else peer_rows(rows), both("cli.title.peers"), None if args.json else COLUMNS)
    return 0


def cmd_remove(args) -> int:
    from exchange import peers  # lazy: CLI start

    out = peers.remove(args.name, args.by or _user())
    emit(args, out if args.json and out is not None else {"removed": args.name} if args.json
         else t("cli.msg.peer_removed", name=args.name))
    return 0


def sync_rows(summary: dict) -> list[dict]:
    return [{**d, "state": term_both("mirror", d["state"]), "error": (d.get("error") or "")[:160]}
            for d in summary["datasets"]]


def cmd_sync(args) -> int:
    from exchange.mirroring import sync_peer  # lazy: CLI start

    with _quiet(args):
        summary = sync_peer(args.name)
    if args.json:
        emit(args, summary)
    else:
        emit(args, sync_rows(summary), both("cli.title.peer_sync", peer=args.name,
                                            outcome=term_both("sync", summary["outcome"])), SYNC_COLUMNS)
        emit(args, t("cli.msg.peer_reports", n=summary["reports"]))
        if summary.get("error"):
            print(f"exchange: {summary['error']}")
    return EXIT.get(summary["outcome"], 1)


def cmd_cosignatures(args) -> int:
    from exchange import peers  # lazy: CLI start

    rows = peers.cosignatures(args.dataset)
    shown = rows if args.json else [{**r, "cosignature": (r.get("cosignature") or "")[:60]} for r in rows]
    emit(args, shown, both("cli.title.cosignatures"), None if args.json else COSIG_COLUMNS)
    return 0


def register(add) -> None:
    sp = add("peers", cmd_list, both("cli.help.peers"))
    sub = sp.add_subparsers(dest="peers_command")
    json_arg = {"action": "store_true", "default": argparse.SUPPRESS, "help": both("cli.arg.json")}

    def command(name, func, help_key):
        p = sub.add_parser(name, help=both(help_key), description=both(help_key))
        p.add_argument("--json", **json_arg)
        p.set_defaults(func=func)
        return p

    p = command("add", cmd_add, "cli.help.peers_add")
    p.add_argument("name", help=both("cli.arg.peer_name"))
    p.add_argument("url", help=both("cli.arg.peer_url"))
    p.add_argument("--fingerprint", required=True, help=both("cli.arg.peer_fingerprint"))
    p.add_argument("--credential", help=both("cli.arg.peer_credential"))
    p.add_argument("--by", help=both("cli.arg.peer_by"))
    command("list", cmd_list, "cli.help.peers_list")
    p = command("remove", cmd_remove, "cli.help.peers_remove")
    p.add_argument("name", help=both("cli.arg.peer_name"))
    p.add_argument("--by", help=both("cli.arg.peer_by"))
    p = command("sync", cmd_sync, "cli.help.peers_sync")
    p.add_argument("name", help=both("cli.arg.peer_name"))
    p = command("cosignatures", cmd_cosignatures, "cli.help.peers_cosignatures")
    p.add_argument("--dataset", help=both("cli.arg.peer_dataset"))
