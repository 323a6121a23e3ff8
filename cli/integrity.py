"""Integrity: `exchange record RECORD_ID` (status and history), `exchange audit-chain DATASET`,
`exchange consistency DATASET --from A --to B` (RFC 9162 proof between two versions)."""
from __future__ import annotations

import json

from base import times
from base.errors import VerificationError
from base.i18n import both, t, term_both
from cli import catalog, cell, table
from cli.progress import bar


def cmd_record(args) -> int:
    st = catalog().record_status(args.record_id, args.version, args.leaf_hash)
    if args.json:
        print(json.dumps(st, ensure_ascii=False, indent=1, default=times.json_default))
        return 0
    why = f"（{st['reason']}）" if st.get("reason") else ""
    print(t("cli.msg.record_status", record_id=st["record_id"], dataset=st["dataset"],
            status=term_both("record", st["status"]), since=cell(st["since"]), why=why,
            version=st["current_version"]))
    if st.get("disputed"):
        print(t("cli.msg.disputed", dispute=st["dispute"]))
    table(both("cli.title.history"), st["history"], ["version", "change", "status", "reason", "at"],
          {"change": "change", "status": "record"})
    return 0


def cmd_audit_chain(args) -> int:
    from exchange import chain_audit  # lazy: CLI start (the catalogue imports pyarrow)

    entries, jwks, key_status = chain_audit.published_versions(args.dataset)
    with bar(args) as progress:
        task = progress.add_task(t("cli.progress.checking", dataset=args.dataset), total=len(entries))
        out = chain_audit.check(args.dataset, entries, jwks, key_status,
                                progress=lambda: progress.advance(task))
    if args.json:
        print(json.dumps(out, indent=1))
    elif out["ok"]:
        print(t("cli.msg.chain_intact", dataset=args.dataset, versions=out["versions_checked"],
                records=f"{out['records_checked']:,}", checks=", ".join(out["checks"])))
    if not out["ok"]:
        b = out["first_break"]
        raise VerificationError(b["check"], b["name"], f"version {b['version']}: {b['message']}")
    return 0


def cmd_consistency(args) -> int:
    out = catalog().consistency(args.dataset, args.first, args.second)
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=1))
        return 0
    print(t("cli.msg.consistency", dataset=out["dataset"], first=out["first_version"],
            second=out["second_version"], m=f"{out['first_size']:,}", n=f"{out['second_size']:,}",
            hashes=len(out["proof"])))
    print(f"  first_root  {out['first_root']}\n  second_root {out['second_root']}")
    for h in out["proof"]:
        print(f"  {h}")
    return 0


def register(add) -> None:
    sp = add("consistency", cmd_consistency, both("cli.help.consistency"))
    sp.add_argument("dataset")
    sp.add_argument("--from", dest="first", type=int, required=True, help=both("cli.arg.from_version"))
    sp.add_argument("--to", dest="second", type=int, required=True, help=both("cli.arg.to_version"))
    sp = add("record", cmd_record, both("cli.help.record"))
    sp.add_argument("record_id")
    sp.add_argument("--version", type=int, help=both("cli.arg.version"))
    sp.add_argument("--leaf-hash", help=both("cli.arg.leaf_hash"))
    sp = add("audit-chain", cmd_audit_chain, both("cli.help.audit_chain"))
    sp.add_argument("dataset")
