"""Certificate types: `exchange types check [--dir DIR]` loads every type file and reports each
one that does not load, in one line (exit 2 if any)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from base.errors import ConfigError
from cli import table
from schemas import types


def cmd_types(args) -> int:
    directory = Path(args.dir) if args.dir else types.TYPES_DIR
    if not directory.is_dir():
        raise ConfigError(f"--dir {directory}: no such folder of certificate type files")
    found = types.load_dir(directory)
    problems = [{"file": path, "reason": reason} for path, reason in found.problems.items()]
    if args.json:
        print(json.dumps({"dir": str(directory), "types": sorted(found), "problems": problems},
                         ensure_ascii=False, indent=1))
    elif problems:
        table(f"Certificate type files that do not load ({directory})", problems, ["file", "reason"])
    else:
        print(f"{len(found)} certificate types in {directory}: all valid")
    if problems:
        print(f"exchange: {len(problems)} of {len(problems) + len(found)} certificate type files in "
              f"{directory} do not load; the first: {problems[0]['reason']}", file=sys.stderr)
        return ConfigError.exit_code
    return 0


def register(add) -> None:
    sp = add("types", cmd_types, "certificate types: `check` reports every type file that does not load")
    sp.add_argument("action", choices=["check"])
    sp.add_argument("--dir", help="a folder of type files (default schemas/types)")
