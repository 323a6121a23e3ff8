"""The tests mirror the source tree: in tests/unit and tests/integration every test file sits in
a folder named for the room (top-level package) it mainly tests, and every folder on the way is
a package (`from tests.conftest import ...`). This file, a test of the tests themselves, is the
one test at a tier's top. tests/e2e stays flat: its tests run the whole
pipeline under Airflow, not one room."""
from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

from tests.conftest import ROOT

TIERS = ("unit", "integration")


def rooms() -> set[str]:
    return {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()} - {"tests"}


def _test_files() -> list[Path]:
    return sorted(p for tier in TIERS for p in (ROOT / "tests" / tier).rglob("*.py")
                  if p.name.startswith("test_") or p.name.endswith("_test.py"))


def test_every_test_file_sits_in_a_folder_named_for_a_room():
    known, here = rooms(), Path(__file__).resolve()
    misplaced = []
    for path in _test_files():
        if path.resolve() == here:
            continue
        tier = ROOT / "tests" / path.relative_to(ROOT / "tests").parts[0]
        folders = path.relative_to(tier).parts[:-1]
        if not folders or folders[0] not in known:
            misplaced.append(str(path.relative_to(ROOT)))
    assert not misplaced, (f"move each into tests/<tier>/<room>/ (rooms: {', '.join(sorted(known))}):\n"
                           + "\n".join(misplaced))


def test_every_test_folder_is_a_package():
    missing = set()
    for path in _test_files():
        folder = path.parent
        while folder != ROOT:
            if not (folder / "__init__.py").is_file():
                missing.add(str(folder.relative_to(ROOT)))
            folder = folder.parent
    assert not missing, "add an empty __init__.py to: " + ", ".join(sorted(missing))


def test_the_rooms_are_found():
    assert {"base", "trust", "schemas", "catalog", "exchange", "api", "cli"} <= rooms()


def test_every_name_imported_from_a_room_exists():
    """After a module moves, `from old.place import name` can survive a linter (pyflakes does
    not look inside the module) and fail only when that code runs: import each one here."""
    known, missing = rooms() | {"tests"}, []
    for path in sorted(ROOT.glob("*/**/*.py")):
        if path.relative_to(ROOT).parts[0] not in known | {"dags"}:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                    and node.module.split(".")[0] in known:
                module = importlib.import_module(node.module)
                for alias in node.names:
                    if not hasattr(module, alias.name) and not (
                            hasattr(module, "__path__")
                            and importlib.util.find_spec(f"{node.module}.{alias.name}")):
                        missing.append(f"{path.relative_to(ROOT)}:{node.lineno}: "
                                       f"{node.module} has no {alias.name}")
    assert not missing, "\n".join(missing)
