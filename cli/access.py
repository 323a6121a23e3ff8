"""Consumer access: departments, credentials, grants (every change audited), the audit chain
and a holder's access report."""
from __future__ import annotations

import argparse
import json
import sys

from base import clock
from base.files import atomic_write
from base.i18n import both, t, term_both
from cli import cell, emit
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
        p = sub.add_parser(cname, help=chelp, description=chelp)
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=both("cli.arg.json"))
        p.set_defaults(sub_func=func)
        for a, kw in args:
            p.add_argument(*a, **kw)


def cmd_dept_add(args) -> int:
    _access().add_department(args.id, args.name, args.role, actor=args.actor)
    _out(args, {"department": args.id, "role": args.role},
         t("cli.msg.dept_saved", id=args.id, role=term_both("role", args.role)))
    return 0


def cmd_dept_endpoint(args) -> int:
    from catalog.serving.subscriptions import set_endpoint

    if (args.url is None) == (not args.clear):
        from base.errors import InvalidRequest
        raise InvalidRequest(t("cli.msg.endpoint_usage"))
    out = set_endpoint(_access().engine, args.id, None if args.clear else args.url, actor=args.actor)
    _out(args, out, t("cli.msg.endpoint_set", id=args.id, url=out["endpoint"] or "–"))
    return 0


def cmd_dept_list(args) -> int:
    emit(args, _access().departments(), both("cli.title.departments"),
         ["id", "name", "role", "active", "created_at", "notice_endpoint"], {"role": "role", "active": "bool"})
    return 0


def cmd_dept_objection_days(args) -> int:
    from exchange import objections  # lazy: CLI start (the catalogue)

    out = objections.set_days(args.id, args.days, actor=args.actor)
    _out(args, out, t("cli.msg.objection_days", department=args.id, days=args.days))
    return 0


def cmd_cred_issue(args) -> int:
    cred = _access().issue_credential(args.department, args.days, actor=args.actor)
    if args.json:
        print(json.dumps(cred))
    else:
        print(t("cli.msg.key_issued", department=args.department, key=cred["key"], key_id=cred["key_id"],
                expires=cell(cred["expires_at"])))
    return 0


def cmd_cred_revoke(args) -> int:
    _access().revoke_credential(args.key_id, actor=args.actor)
    _out(args, {"revoked": args.key_id}, t("cli.msg.key_revoked", key_id=args.key_id))
    return 0


def cmd_cred_list(args) -> int:
    emit(args, _access().credentials(args.department), both("cli.title.credentials"),
         ["key_id", "department_id", "created_at", "expires_at", "revoked_at"])
    return 0


def cmd_grant_add(args) -> int:
    fields = args.fields.split(",") if args.fields else None
    gid = _access().add_grant(args.department, args.dataset, args.purpose, fields, args.days, actor=args.actor)
    _out(args, {"grant": gid}, t("cli.msg.grant_added", grant=gid))
    return 0


def cmd_grant_revoke(args) -> int:
    _access().revoke_grant(args.grant_id, actor=args.actor)
    _out(args, {"revoked": args.grant_id}, t("cli.msg.grant_revoked", grant=args.grant_id))
    return 0


def cmd_grant_list(args) -> int:
    emit(args, _access().grants(args.department), both("cli.title.grants"),
         ["id", "department_id", "dataset_id", "purposes", "fields", "expires_at", "revoked_at"])
    return 0


def _federation():
    from catalog.serving.federation import FederationService  # lazy: CLI start (the catalogue)
    from exchange.catalogue import open_catalog

    cat = open_catalog()
    return FederationService(cat, _access_for(cat))


def _access_for(cat):
    from exchange.catalogue import open_access  # lazy: CLI start (the catalogue imports pyarrow)
    return open_access(cat)


def cmd_agreement_add(args) -> int:
    gid = _federation().add_agreement(args.department, args.dataset, args.days, actor=args.actor)
    _out(args, {"agreement": gid, "department": args.department, "dataset": args.dataset},
         t("cli.msg.agreement_added", agreement=gid, department=args.department, dataset=args.dataset))
    return 0


def cmd_agreement_revoke(args) -> int:
    _federation().revoke_agreement(args.agreement_id, actor=args.actor)
    _out(args, {"revoked": args.agreement_id}, t("cli.msg.agreement_revoked", agreement=args.agreement_id))
    return 0


def cmd_agreement_list(args) -> int:
    emit(args, _federation().agreements(), both("cli.title.agreements"),
         ["id", "department_id", "dataset_id", "created_at", "expires_at", "revoked_at"])
    return 0


def cmd_audit_verify(args) -> int:
    from exchange import audit_log  # lazy: CLI start (the catalogue imports pyarrow)

    held = audit_log.held_checkpoints(args.checkpoint or [])
    jwks = audit_log.published_jwks(args.jwks)
    with bar(args) as progress:
        task = progress.add_task(t("cli.progress.audit"), total=None)
        report = audit_log.verify(jwks, held, progress=lambda done, total: progress.update(
            task, completed=done, total=total))
    newest = report["newest_checkpoint"]
    emit(args, report if args.json else
         t("cli.msg.audit_intact", entries=report["entries"], checkpoints=report["checkpoints_verified"])
         + (t("cli.msg.audit_newest", size=newest["size"], at=cell(newest["issued_at"])) if newest else "")
         + (t("cli.msg.audit_extends", n=len(held)) if held else "")
         + (f"（{report['problem']}）" if report.get("problem") else ""))
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
        print(t("cli.msg.checkpoint", size=doc["size"], head=doc["head_hash"][:16], at=cell(doc["issued_at"]),
                kid=doc["kid"]) + (t("cli.msg.written_to", path=args.output) if args.output else ""))
    return 0


def cmd_access_report(args) -> int:
    from exchange.audit_log import holder_accesses  # lazy: CLI start (the catalogue)

    key, rows, more = holder_accesses(args.holder_id, args.limit, args.before)
    emit(args, rows, both("cli.title.accesses", key=key),
         ["seq", "at", "department", "on_behalf_of", "purpose", "action", "datasets", "outcome"],
         {"outcome": "outcome"})
    if more:         # stderr: --json stays the list of entries
        print(t("cli.msg.more_pages", key=key, limit=args.limit, seq=rows[-1]["seq"]), file=sys.stderr)
    return 0


def register(add) -> None:
    actor = (("--actor",), {"default": "operator", "help": both("cli.arg.actor")})
    _sub(add, "departments", both("cli.help.departments"), [
        ("add", cmd_dept_add, both("cli.help.departments_add"),
         [(("id",), {}), (("name",), {}),
          (("--role",), {"default": "consumer", "choices": ["consumer", "auditor", "exchange"],
                         "help": both("cli.arg.role")}), actor]),
        ("list", cmd_dept_list, both("cli.help.departments_list"), []),
        ("objection-days", cmd_dept_objection_days, both("cli.help.departments_objection_days"),
         [(("id",), {}), (("days",), {"type": int}), actor]),
        ("endpoint", cmd_dept_endpoint, both("cli.help.departments_endpoint"),
         [(("id",), {}), (("url",), {"nargs": "?"}),
          (("--clear",), {"action": "store_true", "help": both("cli.arg.endpoint_clear")}), actor])])
    _sub(add, "credentials", both("cli.help.credentials"), [
        ("issue", cmd_cred_issue, both("cli.help.credentials_issue"),
         [(("department",), {}), (("--days",), {"type": int, "default": 90}), actor]),
        ("revoke", cmd_cred_revoke, both("cli.help.credentials_revoke"), [(("key_id",), {}), actor]),
        ("list", cmd_cred_list, both("cli.help.credentials_list"), [(("--department",), {})])])
    _sub(add, "grants", both("cli.help.grants"), [
        ("add", cmd_grant_add, both("cli.help.grants_add"),
         [(("department",), {}), (("dataset",), {}),
          (("--purpose",), {"action": "append", "required": True, "help": both("cli.arg.grant_purpose")}),
          (("--fields",), {"help": both("cli.arg.grant_fields")}),
          (("--days",), {"type": int, "default": 365}), actor]),
        ("revoke", cmd_grant_revoke, both("cli.help.grants_revoke"), [(("grant_id",), {"type": int}), actor]),
        ("list", cmd_grant_list, both("cli.help.grants_list"), [(("--department",), {})])])
    _sub(add, "agreements", both("cli.help.agreements"), [
        ("add", cmd_agreement_add, both("cli.help.agreements_add"),
         [(("department",), {"metavar": "PEER_DEPT"}), (("dataset",), {}),
          (("--days",), {"type": int, "default": 365}), actor]),
        ("revoke", cmd_agreement_revoke, both("cli.help.agreements_revoke"),
         [(("agreement_id",), {"type": int, "metavar": "ID"}), actor]),
        ("list", cmd_agreement_list, both("cli.help.agreements_list"), [])])
    sp = add("audit-verify", cmd_audit_verify, both("cli.help.audit_verify"))
    sp.add_argument("--checkpoint", action="append", metavar="FILE", help=both("cli.arg.checkpoint"))
    sp.add_argument("--jwks", metavar="FILE", help=both("cli.arg.audit_jwks"))
    sp = add("audit-checkpoint", cmd_audit_checkpoint, both("cli.help.audit_checkpoint"))
    sp.add_argument("-o", "--output", metavar="FILE", help=both("cli.arg.checkpoint_output"))
    sp = add("access-report", cmd_access_report, both("cli.help.access_report"))
    sp.add_argument("holder_id")
    sp.add_argument("--limit", type=int, default=500, help=both("cli.arg.page_limit"))
    sp.add_argument("--before", type=int, help=both("cli.arg.before"))
