"""The expectation suite of a certificate type, kept as GX's own JSON in quality/suites/.

The file is generated from the type definition (`python -m quality.suites`) and checked in;
a steward may edit it without Python, and runs read the file, so the edit takes effect.
A test fails while a file differs from what its definition generates.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from base.errors import ConfigError
from schemas.conform import raw_name
from schemas.types import CertificateType, all_types

SUITES_DIR = Path(__file__).with_name("suites")
TODAY = {"$PARAMETER": "today"}          # bound per run: expectation_parameters={"today": ...}


def dated(kwargs: dict) -> bool:
    """An expectation bound to a run parameter ("today"): its outcome may change with time.
    The one test of it: validation (which failures to check again) and change detection."""
    return any(isinstance(v, dict) and "$PARAMETER" in v for v in kwargs.values())

# expectations that need the whole version at once, not one batch
VERSION_WIDE = {"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"}


def suite_path(type_name: str) -> Path:
    return SUITES_DIR / f"{type_name}.json"


def generate(ctype: CertificateType) -> dict:
    """The suite as GX's JSON dict, derived from the definition (no GX import needed)."""
    exps: list[tuple[str, dict]] = []
    for f in ctype.fields:
        if f.type == "date":
            exps.append(("expect_column_values_to_be_parsable_dates", {"column": raw_name(f.name)}))
        if f.required:
            exps.append(("expect_column_values_to_not_be_null", {"column": f.name}))
        if f.required and f.type == "string":     # blank: schemas.normalize.is_blank
            exps.append(("expect_column_values_to_not_be_blank_when_normalised", {"column": f.name}))
        if f.check == "uscc":
            exps.append(("expect_column_values_to_be_valid_uscc", {"column": f.name}))
        if f.check == "ric":
            exps.append(("expect_column_values_to_be_valid_ric", {"column": f.name}))
        if f.in_set:
            exps.append(("expect_column_values_to_be_in_set", {"column": f.name, "value_set": list(f.in_set)}))
        if f.not_future:
            exps.append(("expect_column_values_to_not_be_in_the_future", {"column": f.name, "today": TODAY}))
        if f.unique:
            exps.append(("expect_column_values_to_be_unique", {"column": f.name}))
    for r in ctype.rules:
        if r.kind == "ordered":
            exps.append(("expect_column_pair_values_a_to_be_greater_than_b", {
                "column_A": r.then, "column_B": r.first, "or_equal": True,
                "ignore_row_if": "either_value_is_missing"}))
    return {"name": f"{ctype.name}.v{ctype.version}",
            "meta": {"generated_from": f"schemas/types/{ctype.name}.toml"},
            "expectations": [{"type": t, "kwargs": kw, "meta": {}} for t, kw in exps]}


def render(ctype: CertificateType) -> str:
    return json.dumps(generate(ctype), ensure_ascii=False, indent=1) + "\n"


def read(type_name: str, extra: list[dict] | tuple = ()) -> dict:
    """The checked-in suite (as a steward left it) plus a source's own checks."""
    path = suite_path(type_name)
    if not path.exists():
        raise ConfigError(f"no quality suite {path}; write it with `python -m quality.suites`")
    data = json.loads(path.read_text(encoding="utf-8"))
    data["expectations"] = [*data["expectations"],
                            *({"type": c["type"], "kwargs": c["kwargs"], "meta": {"source_check": True}}
                              for c in extra)]
    return data


def to_gx(data: dict, *, version_wide: bool | None = None):
    """A GX ExpectationSuite with the row-level (or the version-wide, or None: all)
    expectations of `data`."""
    import great_expectations as gx  # lazy: GX takes seconds to import

    from quality import expectations as _custom  # noqa: F401 - lazy: registers GX's custom types

    picked = [{"type": e["type"], "kwargs": e["kwargs"], "meta": e.get("meta") or {}}
              for e in data["expectations"]
              if version_wide is None or (e["type"] in VERSION_WIDE) == version_wide]
    return gx.ExpectationSuite(name=data["name"] + (".version" if version_wide else ""),
                               expectations=picked)


def suite_columns(suite) -> list[str]:
    """The columns a suite reads: GX is handed only these."""
    cols = []
    for e in suite.expectations:
        for key in ("column", "column_A", "column_B"):
            c = getattr(e, key, None)
            if c and c not in cols:
                cols.append(c)
        for c in getattr(e, "column_list", None) or []:
            if c not in cols:
                cols.append(c)
    return cols


def write_all() -> list[Path]:
    SUITES_DIR.mkdir(exist_ok=True)
    out = []
    for ctype in all_types().values():
        suite_path(ctype.name).write_text(render(ctype), encoding="utf-8")
        out.append(suite_path(ctype.name))
    return out


if __name__ == "__main__":
    for p in write_all():
        print(p, file=sys.stderr)
