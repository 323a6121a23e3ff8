"""A source's own checks (`[[checks]]` in its registration), on top of its type's suite.

Checked when the registration is read, without importing GX (that happens at DAG parse time):
each check names a known expectation type and gives the arguments it needs.

    [[checks]]
    type = "expect_column_value_lengths_to_equal"
    column = "licence_number"
    value = 15
"""
from __future__ import annotations

from exchange.errors import ConfigError, UnknownName

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


def parse(raw: list, fields: list[str], where: str) -> tuple[dict, ...]:
    """[[checks]] tables -> ({"type": ..., "kwargs": {...}}, ...), refusing unknown names."""
    out = []
    for i, check in enumerate(raw, start=1):
        at = f"{where} [[checks]] #{i}"
        if not isinstance(check, dict) or "type" not in check:
            raise ConfigError(f"{at}: give `type = \"expect_...\"` and its arguments")
        kwargs = {k: v for k, v in check.items() if k != "type"}
        if check["type"] not in KNOWN:
            raise UnknownName(f"expectation type in {at}", check["type"], KNOWN)
        required, optional = KNOWN[check["type"]]
        if required - set(kwargs):
            raise ConfigError(f"{at}: {check['type']} needs {sorted(required - set(kwargs))}")
        if set(kwargs) - required - optional:
            raise ConfigError(f"{at}: {check['type']} takes only "
                              f"{sorted(required | optional)}, not {sorted(set(kwargs) - required - optional)}")
        for col in [kwargs.get("column"), *(kwargs.get("column_list") or [])]:
            if col is not None and col not in fields:
                raise UnknownName(f"field in {at}", col, fields)
        if check["type"] == "expect_column_values_to_not_be_in_the_future":
            kwargs["today"] = {"$PARAMETER": "today"}
        out.append({"type": check["type"], "kwargs": kwargs})
    return tuple(out)


def parse_gates(raw: dict, where: str) -> dict:
    """[gates] size_change = 0.3: the largest relative change in size published unattended."""
    bad = set(raw) - {"size_change"}
    if bad:
        raise UnknownName(f"gate in {where}", sorted(bad)[0], ["size_change"])
    size = raw.get("size_change", 0.30)
    if not isinstance(size, (int, float)) or not 0 < size:
        raise ConfigError(f"{where}: [gates] size_change must be a positive fraction like 0.3")
    return {"size_change": float(size)}
