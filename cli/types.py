"""Certificate types: `exchange types check [--dir DIR]` loads every type file and reports each
one that does not load, in one line (exit 2 if any)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from base.errors import ConfigError
from base.i18n import both, t
from cli import table
from schemas import types


def cmd_types(args) -> int:
    directory = Path(args.dir) if args.dir else types.TYPES_DIR
    if not directory.is_dir():
        raise ConfigError(t("cli.error.types_dir", dir=directory))
    found = types.load_dir(directory)
    problems = [{"file": path, "reason": reason} for path, reason in found.problems.items()]
    if args.json:
        print(json.dumps({"dir": str(directory), "types": sorted(found), "problems": problems},
                         ensure_ascii=False, indent=1))
    elif problems:
        table(both("cli.title.types_bad", dir=directory), problems, ["file", "reason"])
    else:
        print(t("cli.msg.types_ok", n=len(found), dir=directory))
    if problems:
        print("exchange: " + t("cli.error.types_bad", bad=len(problems), total=len(problems) + len(found),
                               dir=directory, reason=problems[0]["reason"]), file=sys.stderr)
        return ConfigError.exit_code
    return 0


def register(add) -> None:
    sp = add("types", cmd_types, both("cli.help.types"))
    sp.add_argument("action", choices=["check"])
    sp.add_argument("--dir", help=both("cli.arg.types_dir"))
