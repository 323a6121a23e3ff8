"""A source's own checks (`[[checks]]` in its registration), on top of its type's suite.

Checked when the registration is read, without importing GX (that happens at DAG parse time):
each check names a known expectation type and gives the arguments it needs.

    [[checks]]
    type = "expect_column_value_lengths_to_equal"
    column = "licence_number"
    value = 15
"""
from __future__ import annotations

import re

from base import tomlfile
from base.errors import ConfigError, UnknownName

# expectation type -> (required arguments, optional arguments)
KNOWN = {
    "expect_column_values_to_not_be_null": ({"column"}, {"mostly"}),
    "expect_column_values_to_match_regex": ({"column", "regex"}, {"mostly"}),
    "expect_column_values_to_not_match_regex": ({"column", "regex"}, {"mostly"}),
    "expect_column_values_to_be_in_set": ({"column", "value_set"}, {"mostly"}),
    "expect_column_values_to_not_be_in_set": ({"column", "value_set"}, {"mostly"}),
    "expect_column_value_lengths_to_equal": ({"column", "value"}, {"mostly"}),
    "expect_column_value_lengths_to_be_between": ({"column"}, {"min_value", "max_value", "mostly"}),
    "expect_column_values_to_be_between": ({"column"}, {"min_value", "max_value", "mostly"}),
    "expect_column_values_to_be_unique": ({"column"}, set()),
    "expect_compound_columns_to_be_unique": ({"column_list"}, set()),
    "expect_column_values_to_be_valid_uscc": ({"column"}, {"mostly"}),
    "expect_column_values_to_be_valid_ric": ({"column"}, {"mostly"}),
    "expect_column_values_to_not_be_blank_when_normalised": ({"column"}, {"mostly"}),
    "expect_column_values_to_not_be_in_the_future": ({"column"}, {"mostly"}),
}


# argument -> the kind of TOML value it takes (base/tomlfile.py)
ARGUMENTS = {"column": "string", "regex": "string", "value_set": "array", "value": "integer",
             "min_value": "number", "max_value": "number", "mostly": "number",
             "column_list": "array of strings"}
LENGTHS = ("expect_column_value_lengths_to_equal", "expect_column_value_lengths_to_be_between")


def _argument(name: str, value, check_type: str, key: str, where: str):
    kind = "integer" if check_type in LENGTHS and name in ("min_value", "max_value") else ARGUMENTS[name]
    tomlfile.typed(value, kind, key, where)
    if name == "mostly":
        tomlfile.between(value, 0, 1, key, where, "number")
    elif kind == "integer":
        tomlfile.between(value, 0, 1_000_000, key, where)
    elif name == "regex":
        try:
            re.compile(value)
        except (re.error, RecursionError, OverflowError) as exc:
            raise ConfigError(f"{where}: {key} {value!r} is not a regular expression ({exc})") from None
    elif name == "value_set":
        for i, item in enumerate(value):
            if not (isinstance(item, str) or tomlfile.KINDS["number"](item)):
                raise tomlfile.wrong(where, tomlfile.key_of(key, i), "a string or a number", item)
    elif name == "column_list" and not value:
        raise ConfigError(f"{where}: {key} must name at least one column")


def parse(raw: list, fields: list[str], where: str) -> tuple[dict, ...]:
    """[[checks]] tables -> ({"type": ..., "kwargs": {...}}, ...), refusing unknown names and
    arguments of the wrong type, each named by its key (checks[2].column)."""
    tomlfile.typed(raw, "array of tables", "checks", where)
    out = []
    for i, check in enumerate(raw):
        at = tomlfile.key_of("checks", i)
        if "type" not in check:
            raise ConfigError(f"{where}: {at}: give `type = \"expect_...\"` and its arguments")
        kind = tomlfile.typed(check["type"], "string", f"{at}.type", where)
        if kind not in KNOWN:
            raise UnknownName("expectation type", kind, KNOWN, where=f"{where}: {at}.type")
        kwargs = {k: v for k, v in check.items() if k != "type"}
        required, optional = KNOWN[kind]
        if required - set(kwargs):
            raise ConfigError(f"{where}: {at}: {kind} needs {sorted(required - set(kwargs))}")
        if set(kwargs) - required - optional:
            raise ConfigError(f"{where}: {at}: {kind} takes only "
                              f"{sorted(required | optional)}, not {sorted(set(kwargs) - required - optional)}")
        for name, value in kwargs.items():
            _argument(name, value, kind, tomlfile.key_of(at, name), where)
        for col in [kwargs.get("column"), *(kwargs.get("column_list") or [])]:
            if col is not None and col not in fields:
                raise UnknownName("field", col, fields, where=f"{where}: {at}")
        if kind == "expect_column_values_to_not_be_in_the_future":
            kwargs["today"] = {"$PARAMETER": "today"}
        out.append({"type": kind, "kwargs": kwargs})
    return tuple(out)


def parse_gates(raw: dict, where: str) -> dict:
    """[gates] size_change = 0.3: the largest relative change in size published unattended."""
    tomlfile.typed(raw, "table", "gates", where)
    bad = set(raw) - {"size_change"}
    if bad:
        raise UnknownName("gate", sorted(bad)[0], ["size_change"], where=f"{where}: gates")
    size = tomlfile.typed(raw.get("size_change", 0.30), "number", "gates.size_change", where)
    if not 0 < size <= 1_000:
        raise ConfigError(f"{where}: gates.size_change must be a positive fraction like 0.3, not {size!r}")
    return {"size_change": float(size)}
