"""Integrity: `exchange record RECORD_ID` (status and history), `exchange audit-chain DATASET`."""
from __future__ import annotations

import json

from base import times
from base.errors import VerificationError
from base.i18n import term_both
from cli import catalog, cell, table
from cli.progress import bar


def cmd_record(args) -> int:
    st = catalog().record_status(args.record_id, args.version, args.leaf_hash)
    if args.json:
        print(json.dumps(st, ensure_ascii=False, indent=1, default=times.json_default))
        return 0
    why = f" ({st['reason']})" if st.get("reason") else ""
    print(f"record {st['record_id']} in {st['dataset']}: {term_both('record', st['status'])} "
          f"since {cell(st['since'])}{why}; "
          f"current version {st['current_version']}")
    if st.get("disputed"):
        print(f"disputed: {st['dispute']}")
    table("History", st["history"], ["version", "change", "status", "reason", "at"])
    return 0


def cmd_audit_chain(args) -> int:
    from exchange import chain_audit  # lazy: CLI start (the catalogue imports pyarrow)

    entries, jwks, key_status = chain_audit.published_versions(args.dataset)
    with bar(args) as progress:
        task = progress.add_task(f"checking {args.dataset}", total=len(entries))
        out = chain_audit.check(args.dataset, entries, jwks, key_status,
                                progress=lambda: progress.advance(task))
    if args.json:
        print(json.dumps(out, indent=1))
    elif out["ok"]:
        print(f"{args.dataset}: {out['versions_checked']} versions, {out['records_checked']:,} records: "
              "chain intact (" + ", ".join(out["checks"]) + ")")
    if not out["ok"]:
        b = out["first_break"]
        raise VerificationError(b["check"], b["name"], f"version {b['version']}: {b['message']}")
    return 0


def register(add) -> None:
    sp = add("record", cmd_record, "a record's status (valid, expired, revoked, withdrawn, "
                                   "superseded), since when, and its history")
    sp.add_argument("record_id")
    sp.add_argument("--version", type=int, help="the version of the copy you hold")
    sp.add_argument("--leaf-hash", help="the leaf hash of the copy you hold (superseded?)")
    sp = add("audit-chain", cmd_audit_chain, "check every version of a dataset; report the first break")
    sp.add_argument("dataset")
