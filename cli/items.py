"""Service items (事项): list, show one, and the 三级四同 check across levels."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from base.errors import DataError
from base.i18n import both, t
from cli import table
from schemas.items import ITEMS_DIR, LEVELS, catalogue, get_item, mismatches
from schemas.types import get_type


def _dir(args) -> Path:
    return Path(args.dir) if args.dir else ITEMS_DIR


def cmd_items(args) -> int:
    items = [i for i in catalogue(_dir(args)).values() if not args.level or args.level in i.levels]
    if args.json:
        print(json.dumps([i.as_dict() for i in items], ensure_ascii=False, indent=1))
        return 0
    rows = [{"code": i.code, "name": i.name, "power_type": i.power_type, "levels": ",".join(i.levels),
             "held": sum(m.held for m in i.materials), "submitted": sum(not m.held for m in i.materials),
             "later": sum(m.later for m in i.materials)} for i in items]
    table(both("cli.title.items"), rows,
          ["code", "name", "power_type", "levels", "held", "submitted", "later"])
    return 0


def cmd_item(args) -> int:
    item = get_item(args.code, _dir(args))
    if args.json:
        print(json.dumps(item.as_dict(), ensure_ascii=False, indent=1))
        return 0
    print(t("cli.msg.item", code=item.code, name=item.name, power_type=item.power_type,
            levels="、".join(item.levels), applicant=item.applicant))
    if item.description:
        print(item.description)
    rows = [{"material": m.name, "source": t("cli.msg.from_exchange", title=get_type(m.certificate).title)
             if m.held else t("cli.msg.applicant_submits"), "whose": m.whose or "",
             "later": t("cli.msg.later") if m.later else ""} for m in item.materials]
    table(both("cli.title.materials"), rows, ["material", "source", "whose", "later"])
    return 0


def cmd_items_check(args) -> int:
    found = mismatches(_dir(args))
    if args.json:
        print(json.dumps({"mismatches": found}, ensure_ascii=False, indent=1))
    elif found:
        rows = [{"code": m["code"], "name": m["name"], "attribute": m["attribute"],
                 "values": "\n".join(f"{k}: {v}" for k, v in m["values"].items())
                 + ("\n" + t("cli.msg.differing", what="；".join(m["differing"])) if m.get("differing") else "")}
                for m in found]
        table(both("cli.title.mismatches"), rows, ["code", "name", "attribute", "values"])
    else:
        print(t("cli.msg.items_agree"))
    if found:   # one JSON document on stdout; the reason on stderr
        err = DataError(t("cli.error.mismatches", n=len(found)), source=str(_dir(args)), rule="三级四同")
        print(f"exchange: {err}", file=sys.stderr)
        return err.exit_code
    return 0


def register(add) -> None:
    sp = add("items", cmd_items, both("cli.help.items"))
    sp.add_argument("--level", choices=LEVELS, help=both("cli.arg.level"))
    sp.add_argument("--dir", help=both("cli.arg.items_dir"))
    sp = add("item", cmd_item, both("cli.help.item"))
    sp.add_argument("code")
    sp.add_argument("--dir", help=both("cli.arg.items_dir"))
    sp = add("items-check", cmd_items_check, both("cli.help.items_check"))
    sp.add_argument("--dir", help=both("cli.arg.items_dir"))
