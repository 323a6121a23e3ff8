"""Registration documents for tests: valid ones of each connector kind, and a small TOML writer
(inline tables and arrays, so any dict of TOML values can be written, however mutated)."""
from __future__ import annotations

import copy
import json
import math
import tomllib
from datetime import date, datetime, time

from tests.conftest import ROOT

SMR = tomllib.loads((ROOT / "demo" / "registrations" / "smr_business_licence.toml").read_text("utf-8"))


def doc(kind: str = "sql") -> dict:
    """The market-regulation sample registration with a connector of `kind`; every path is
    relative (taken under the configured silo roots)."""
    d = copy.deepcopy(SMR)
    d["connector"] = {
        "sql": {"kind": "sql", "url": "sqlite:///market_regulation.db", "table": "yyzz_djxx",
                "batch_rows": 1000},
        "http": {"kind": "http", "url": "http://127.0.0.1:9/", "path": "/licences",
                 "fields": ["ZCH", "TYSHXYDM"], "page_size": 100, "backoff": 0.5, "auth": "bearer",
                 "secret_env": "SILO_SMR_TOKEN"},
        "files": {"kind": "files", "path": "market_regulation", "pattern": "*.csv",
                  "encoding": "gbk", "batch_rows": 500, "settle_seconds": 2.5},
    }[kind]
    d["checks"] = [{"type": "expect_column_value_lengths_to_equal", "column": "licence_number",
                    "value": 15, "mostly": 0.9},
                   {"type": "expect_compound_columns_to_be_unique",
                    "column_list": ["licence_number", "holder_code"]}]
    d["gates"] = {"size_change": 0.3}
    return d


def string(text: str) -> str:
    """A TOML basic string: JSON's escapes, and DEL, which TOML wants escaped too."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def key(k: str) -> str:
    return string(k)


def value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, (datetime, date, time)):
        return v.isoformat()
    if isinstance(v, dict):
        return "{" + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x) for x in v) + "]"
    raise TypeError(type(v))


def to_toml(d: dict) -> str:
    return "\n".join(f"{key(k)} = {value(v)}" for k, v in d.items()) + "\n"
