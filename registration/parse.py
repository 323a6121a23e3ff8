"""A registration from its TOML table: every key checked for its type, every identifier that
becomes a path, a table name, a DAG id or an Asset against a strict pattern, the defaults filled
in. A malformed table is refused in one line naming the key, what was expected and what was
found (ConfigError, exit 2).
"""
from __future__ import annotations

from croniter import croniter  # what Airflow's cron timetables parse with

from base import tomlfile
from base.errors import ConfigError, UnknownName
from registration import checks
from registration.connector import settings_for
from registration.model import Registration
from registration.partitioning import parse_run
from registration.rules import (
    CYCLES,
    DATASET_RE,
    DATASET_RULE,
    ID_RE,
    ID_RULE,
    PRESETS,
    REQUIRED,
    SHARING,
    TABLES,
    TEXTS,
    TOP_KEYS,
)
from schemas.types import get_type


def _schedule(value, where: str) -> str:
    tomlfile.text(value, "schedule", where, 100)
    if value in PRESETS:
        return value
    if value.startswith("@") or not croniter.is_valid(value):
        raise ConfigError(f"{where}: schedule {value!r} is not allowed: a cron expression such as "
                          f"'0 2 * * *' or one of {', '.join(PRESETS)}")
    return value


def parse(raw: dict, where: str) -> Registration:
    """A registration from its TOML table; ConfigError (one line, naming the key) if malformed."""
    tomlfile.typed(raw, "table", "the file", where)
    tomlfile.check_keys(raw, where, TOP_KEYS, REQUIRED)
    raw = dict(raw)
    for key in ("id", "department"):
        tomlfile.matching(raw[key], ID_RE, key, where, ID_RULE)
    for key, longest in TEXTS.items():
        if key in raw:
            tomlfile.text(raw[key], key, where, longest)
    for key in ("certificate_type", "sharing", "update_cycle"):
        if key in raw:
            tomlfile.typed(raw[key], "string", key, where)
    for key, kind in TABLES.items():
        if key in raw:
            tomlfile.typed(raw[key], kind, key, where)
    if "schedule" in raw:
        _schedule(raw["schedule"], where)
    ctype = get_type(raw["certificate_type"], where=f"{where}: certificate_type")
    raw.setdefault("dataset", f"{ctype.name}.{raw['department']}")
    tomlfile.matching(raw["dataset"], DATASET_RE, "dataset", where, DATASET_RULE)
    raw.setdefault("title", f"{ctype.title} ({raw.get('department_name') or raw['department']})"[:255])
    if raw.get("sharing", "conditional") not in SHARING:
        raise UnknownName("sharing attribute", raw["sharing"], SHARING, where=f"{where}: sharing")
    if raw.get("update_cycle", "daily") not in CYCLES:
        raise UnknownName("update cycle", raw["update_cycle"], CYCLES, where=f"{where}: update_cycle")
    for table in ("mapping", "constants"):
        for name in raw.get(table, {}):
            if name not in ctype.field_names:
                raise UnknownName(f"field of {ctype.name}", name, ctype.field_names,
                                  where=f"{where}: {tomlfile.key_of(table, name)}")
    status = ctype.field("status").in_set or ()
    for silo_code, canonical in raw.get("status_map", {}).items():
        if canonical not in status:
            raise UnknownName(f"status for silo code {silo_code!r}", canonical, status,
                              where=f"{where}: {tomlfile.key_of('status_map', silo_code)}")
    settings_for(raw["connector"], where)          # every connector key, paths under their roots
    raw["checks"] = checks.parse(raw.get("checks", []), ctype.field_names, where)
    raw["gates"] = checks.parse_gates(raw.get("gates", {}), where)
    raw["run"] = parse_run(raw.get("run", {}), raw["connector"], where)
    return Registration(**raw)
