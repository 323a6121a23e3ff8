"""Consumer access: departments, credentials, grants (every change audited), the audit chain
and a holder's access report."""
from __future__ import annotations

import argparse
import json
import sys

from base import clock
from base.files import atomic_write
from cli import emit
from cli.progress import bar


def _access():
    from exchange.catalogue import open_access  # lazy: CLI start (the catalogue imports pyarrow)
    return open_access()


def _out(args, data: dict, text: str) -> None:
    print(json.dumps(data) if args.json else text)


def _sub(add, name, help, commands):
    sp = add(name, lambda a: a.sub_func(a), help)
    sub = sp.add_subparsers(dest=f"{name}_command", required=True)
    for cname, func, chelp, args in commands:
        p = sub.add_parser(cname, help=chelp)
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
        p.set_defaults(sub_func=func)
        for a, kw in args:
            p.add_argument(*a, **kw)


def cmd_dept_add(args) -> int:
    _access().add_department(args.id, args.name, args.role, actor=args.actor)
    _out(args, {"department": args.id, "role": args.role}, f"department {args.id} ({args.role}) saved")
    return 0


def cmd_dept_list(args) -> int:
    emit(args, _access().departments(), "Departments", ["id", "name", "role", "active", "created_at"])
    return 0


def cmd_cred_issue(args) -> int:
    cred = _access().issue_credential(args.department, args.days, actor=args.actor)
    if args.json:
        print(json.dumps(cred))
    else:
        print(f"key for {args.department} (shown once, store it now): {cred['key']}\n"
              f"key id {cred['key_id']}, expires {cred['expires_at']}")
    return 0


def cmd_cred_revoke(args) -> int:
    _access().revoke_credential(args.key_id, actor=args.actor)
    _out(args, {"revoked": args.key_id}, f"key {args.key_id} revoked")
    return 0


def cmd_cred_list(args) -> int:
    emit(args, _access().credentials(args.department), "Credentials",
         ["key_id", "department_id", "created_at", "expires_at", "revoked_at"])
    return 0


def cmd_grant_add(args) -> int:
    fields = args.fields.split(",") if args.fields else None
    gid = _access().add_grant(args.department, args.dataset, args.purpose, fields, args.days, actor=args.actor)
    _out(args, {"grant": gid}, f"grant {gid} added")
    return 0


def cmd_grant_revoke(args) -> int:
    _access().revoke_grant(args.grant_id, actor=args.actor)
    _out(args, {"revoked": args.grant_id}, f"grant {args.grant_id} revoked")
    return 0


def cmd_grant_list(args) -> int:
    emit(args, _access().grants(args.department), "Grants",
         ["id", "department_id", "dataset_id", "purposes", "fields", "expires_at", "revoked_at"])
    return 0


def cmd_audit_verify(args) -> int:
    from exchange import audit_log  # lazy: CLI start (the catalogue imports pyarrow)

    held = audit_log.held_checkpoints(args.checkpoint or [])
    jwks = audit_log.published_jwks(args.jwks)
    with bar(args) as progress:
        task = progress.add_task("verifying the audit chain", total=None)
        report = audit_log.verify(jwks, held, progress=lambda done, total: progress.update(
            task, completed=done, total=total))
    newest = report["newest_checkpoint"]
    emit(args, report if args.json else
         f"audit chain intact: {report['entries']} entries; {report['checkpoints_verified']} signed "
         f"checkpoints verified" + (f", the newest of size {newest['size']} at {newest['issued_at']}" if newest else "")
         + (f"; it extends the {len(held)} checkpoint(s) given" if held else "")
         + (f" ({report['problem']})" if report.get("problem") else ""))
    return 0


def cmd_audit_checkpoint(args) -> int:
    from exchange.audit_checkpoint import make_checkpoint  # lazy: CLI start (the catalogue)

    doc = make_checkpoint(clock.now())      # the time it is signed
    text = json.dumps(doc, indent=1) + "\n"
    if args.output:
        atomic_write(args.output, text.encode(), mode=0o644)
    if args.json:
        print(text, end="")
    else:
        print(f"audit checkpoint: size {doc['size']}, head {doc['head_hash'][:16]}…, {doc['issued_at']}, "
              f"key {doc['kid']}" + (f"; written to {args.output}" if args.output else ""))
    return 0


def cmd_access_report(args) -> int:
    from exchange.audit_log import holder_accesses  # lazy: CLI start (the catalogue)

    key, rows, more = holder_accesses(args.holder_id, args.limit, args.before)
    emit(args, rows, f"Accesses to the records of {key}",
         ["seq", "at", "department", "purpose", "action", "datasets", "outcome"])
    if more:         # stderr: --json stays the list of entries
        print(f"more: older entries remain; next page: exchange access-report {key} "
              f"--limit {args.limit} --before {rows[-1]['seq']}", file=sys.stderr)
    return 0


def register(add) -> None:
    actor = (("--actor",), {"default": "operator", "help": "who makes the change (audited)"})
    _sub(add, "departments", "consuming departments", [
        ("add", cmd_dept_add, "add or update a department",
         [(("id",), {}), (("name",), {}),
          (("--role",), {"default": "consumer", "choices": ["consumer", "auditor"]}), actor]),
        ("list", cmd_dept_list, "list departments", [])])
    _sub(add, "credentials", "API keys of departments (stored as hashes)", [
        ("issue", cmd_cred_issue, "issue a key (printed once)",
         [(("department",), {}), (("--days",), {"type": int, "default": 90}), actor]),
        ("revoke", cmd_cred_revoke, "revoke a key", [(("key_id",), {}), actor]),
        ("list", cmd_cred_list, "list keys (never the secrets)", [(("--department",), {})])])
    _sub(add, "grants", "grants on conditionally shared datasets", [
        ("add", cmd_grant_add, "grant a department a dataset for purposes (and fields)",
         [(("department",), {}), (("dataset",), {}),
          (("--purpose",), {"action": "append", "required": True,
                            "help": "service-item code or case:* (repeat for several)"}),
          (("--fields",), {"help": "comma-separated field names (default: all)"}),
          (("--days",), {"type": int, "default": 365}), actor]),
        ("revoke", cmd_grant_revoke, "revoke a grant", [(("grant_id",), {"type": int}), actor]),
        ("list", cmd_grant_list, "list grants", [(("--department",), {})])])
    sp = add("audit-verify", cmd_audit_verify, "verify the access audit log's hash chain and its signed "
             "checkpoints (exit 8 at the first break)")
    sp.add_argument("--checkpoint", action="append", metavar="FILE",
                    help="a checkpoint you hold (from audit-checkpoint or GET /v1/audit/checkpoints): "
                         "the log must extend it (repeat for several)")
    sp.add_argument("--jwks", metavar="FILE", help="the exchange's JWKS (default: the published jwks.json)")
    sp = add("audit-checkpoint", cmd_audit_checkpoint, "sign a checkpoint of the audit chain's head "
             "(size, hash, time) and store it; publish it to whoever should hold it")
    sp.add_argument("-o", "--output", metavar="FILE", help="also write the checkpoint to FILE")
    sp = add("access-report", cmd_access_report, "who looked at a holder's records, when and why "
             "(newest first, a page at a time)")
    sp.add_argument("holder_id")
    sp.add_argument("--limit", type=int, default=500, help="entries a page (default 500)")
    sp.add_argument("--before", type=int, help="only entries older than this seq (the next page)")
