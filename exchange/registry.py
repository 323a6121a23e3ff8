"""Registration files: one TOML file per source in settings.sources_dir.

Every key is checked for its type and every identifier that becomes a path, a table name, a
DAG id or an Asset against a strict pattern; a malformed file is refused in one line naming
the key, what was expected and what was found (ConfigError, exit 2). `scan` reads a whole
folder: a file that cannot be loaded is skipped and reported, never hiding the others.
"""
from __future__ import annotations

import logging
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from base import tomlfile
from base.errors import ConfigError, UnknownName
from schemas.types import CertificateType, get_type

log = logging.getLogger(__name__)

SHARING = ("unconditional", "conditional", "not_shared")
CYCLES = {"hourly": 1 / 24, "daily": 1, "weekly": 7, "monthly": 30, "quarterly": 91, "yearly": 365}
TOP_KEYS = {"id", "department", "department_name", "certificate_type", "dataset", "title",
            "sharing", "update_cycle", "schedule", "steward", "description", "connector",
            "mapping", "constants", "status_map", "checks", "gates"}
REQUIRED = {"id", "department", "certificate_type", "connector", "mapping"}
ID_RE = re.compile(r"[a-z][a-z0-9_]{1,62}")
ID_RULE = "lower-case letters, digits and _, starting with a letter, 2 to 63 characters"
DATASET_RE = re.compile(r"(?=.{2,128}\Z)[a-z][a-z0-9_]{0,62}(\.[a-z][a-z0-9_]{0,62})?")
DATASET_RULE = ("TYPE.DEPARTMENT or one name: lower-case letters, digits and _, each part starting "
                "with a letter, at most 128 characters")
PRESETS = ("@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")
# key -> (kind, longest) of the free text keys
TEXTS = {"department_name": 255, "title": 255, "steward": 255, "description": 10_000}
TABLES = {"connector": "table", "mapping": "table of strings", "constants": "table of strings",
          "status_map": "table of strings", "checks": "array of tables", "gates": "table"}


@dataclass(frozen=True)
class Registration:
    id: str
    department: str
    certificate_type: str
    connector: dict
    mapping: dict[str, str]
    dataset: str = ""
    department_name: str = ""
    title: str = ""
    sharing: str = "conditional"
    update_cycle: str = "daily"
    schedule: str | None = None
    steward: str | None = None
    description: str = ""
    constants: dict[str, str] = field(default_factory=dict)
    status_map: dict[str, str] = field(default_factory=dict)
    checks: tuple[dict, ...] = ()           # a source's own expectations (quality/checks.py)
    gates: dict = field(default_factory=lambda: {"size_change": 0.30})
    path: Path | None = None

    @property
    def ctype(self) -> CertificateType:
        return get_type(self.certificate_type)

    @property
    def dag_id(self) -> str:
        return f"source__{self.id}"

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "path"}


@dataclass(frozen=True)
class Problem:
    """A registration file that could not be loaded, and why (one line)."""
    path: str
    source: str | None          # its id, when it has a readable one
    reason: str


@dataclass(frozen=True)
class Scan:
    registrations: dict[str, Registration]
    problems: list[Problem]


def _schedule(value, where: str) -> str:
    tomlfile.text(value, "schedule", where, 100)
    if value in PRESETS:
        return value
    from croniter import croniter      # what Airflow's cron timetables parse with

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
    from connectors.settings import settings_for
    from quality import checks

    settings_for(raw["connector"], where)          # every connector key, paths under their roots
    raw["checks"] = checks.parse(raw.get("checks", []), ctype.field_names, where)
    raw["gates"] = checks.parse_gates(raw.get("gates", {}), where)
    return Registration(**raw)


def load(path: Path) -> Registration:
    raw = tomlfile.load(path, str(path), TOP_KEYS)
    return Registration(**{**parse(raw, str(path)).__dict__, "path": path})


def _id_of(path: Path) -> str | None:
    """The id a file claims, if it is a readable identifier (for reporting a broken file)."""
    try:
        value = tomllib.loads(path.read_text("utf-8")).get("id")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    return value if isinstance(value, str) and ID_RE.fullmatch(value) else None


def scan(directory: Path) -> Scan:
    """Every registration file in `directory`: those that load, and those that do not with the
    reason (a file of an id registered twice is refused with its twin)."""
    loaded: dict[str, list[Registration]] = {}
    problems: list[Problem] = []
    for path in sorted(Path(directory).glob("*.toml")) if Path(directory).is_dir() else ():
        try:
            reg = load(path)
        except ConfigError as exc:
            problems.append(Problem(str(path), _id_of(path), tomlfile.one_line(str(exc))))
            continue
        loaded.setdefault(reg.id, []).append(reg)
    regs = {}
    for source_id, found in loaded.items():
        if len(found) == 1:
            regs[source_id] = found[0]
            continue
        files = ", ".join(str(r.path) for r in found)
        problems += [Problem(str(r.path), source_id, f"{r.path}: source id {source_id!r} is "
                             f"registered twice ({files}); remove one of them") for r in found]
    problems.sort(key=lambda p: p.path)
    return Scan(regs, problems)


def load_all(directory: Path) -> dict[str, Registration]:
    """The registrations that load; the others are skipped and logged (see `scan`)."""
    found = scan(directory)
    for p in found.problems:
        log.warning("registration file not loaded: %s", p.reason)
    return found.registrations


def get(source_id: str, directory: Path) -> Registration:
    found = scan(directory)
    if source_id in found.registrations:
        return found.registrations[source_id]
    for p in found.problems:
        if p.source == source_id:
            raise ConfigError(p.reason)
    raise UnknownName("source", source_id, found.registrations)
