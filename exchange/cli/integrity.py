"""Integrity: `exchange record RECORD_ID` (status and history), `exchange audit-chain DATASET`."""
from __future__ import annotations

import json

from exchange.cli import catalog, table
from base.errors import VerificationError


def cmd_record(args) -> int:
    st = catalog().record_status(args.record_id, args.version, args.leaf_hash)
    if args.json:
        print(json.dumps(st, ensure_ascii=False, indent=1))
        return 0
    why = f" ({st['reason']})" if st.get("reason") else ""
    print(f"record {st['record_id']} in {st['dataset']}: {st['status']} since {st['since']}{why}; "
          f"current version {st['current_version']}")
    if st.get("disputed"):
        print(f"disputed: {st['dispute']}")
    table("History", st["history"], ["version", "change", "status", "reason", "at"])
    return 0


def cmd_audit_chain(args) -> int:
    from catalog.publish.chain import CHECKS, audit_chain, catalogue_entries
    from trust.verify import KEY_STATUS_FILE, read_key_status
    from base.settings import get_settings

    s = get_settings()
    jwks = json.loads(s.jwks_path.read_text(encoding="utf-8")) if s.jwks_path.exists() else {"keys": []}
    entries = catalogue_entries(catalog().engine, args.dataset)
    if not entries:
        from base.errors import NotFound
        raise NotFound(f"dataset {args.dataset!r} has no published versions; see `exchange datasets`")
    from exchange.cli.progress import bar

    with bar(args) as progress:
        task = progress.add_task(f"checking {args.dataset}", total=len(entries))
        report = audit_chain(args.dataset, entries, jwks, read_key_status(s.jwks_path.with_name(KEY_STATUS_FILE)),
                             progress=lambda: progress.advance(task))
    out = {"dataset": args.dataset, "ok": report.ok, "versions": len(entries),
           "versions_checked": report.versions_checked, "records_checked": report.records_checked,
           "first_break": report.first_break, "checks": [n for _, n in CHECKS]}
    if args.json:
        print(json.dumps(out, indent=1))
    elif report.ok:
        print(f"{args.dataset}: {report.versions_checked} versions, {report.records_checked:,} records: "
              "chain intact (" + ", ".join(n for _, n in CHECKS) + ")")
    if not report.ok:
        b = report.first_break
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
