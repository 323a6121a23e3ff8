"""Registration files: one TOML file per source in settings.sources_dir."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from exchange import tomlfile
from exchange.errors import ConfigError, UnknownName
from schemas.types import CertificateType, get_type

SHARING = ("unconditional", "conditional", "not_shared")
CYCLES = {"hourly": 1 / 24, "daily": 1, "weekly": 7, "monthly": 30, "quarterly": 91, "yearly": 365}
TOP_KEYS = {"id", "department", "department_name", "certificate_type", "dataset", "title",
            "sharing", "update_cycle", "schedule", "steward", "description", "connector",
            "mapping", "constants", "status_map", "checks", "gates"}
ID_RE = re.compile(r"^[a-z][a-z0-9_]{1,62}$")


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


def parse(raw: dict, where: str) -> Registration:
    tomlfile.check_keys(raw, where, TOP_KEYS, {"id", "department", "certificate_type", "connector", "mapping"})
    if not ID_RE.match(raw["id"]):
        raise ConfigError(f"{where}: id {raw['id']!r} must be lower-case letters, digits and _")
    ctype = get_type(raw["certificate_type"])
    raw.setdefault("dataset", f"{ctype.name}.{raw['department']}")
    raw.setdefault("title", f"{ctype.title} ({raw.get('department_name') or raw['department']})")
    if raw.get("sharing", "conditional") not in SHARING:
        raise UnknownName("sharing attribute", raw["sharing"], SHARING)
    if raw.get("update_cycle", "daily") not in CYCLES:
        raise UnknownName("update cycle", raw["update_cycle"], CYCLES)
    for name in [*raw["mapping"], *raw.get("constants", {})]:
        if name not in ctype.field_names:
            raise UnknownName(f"field of {ctype.name} in {where}", name, ctype.field_names)
    status = ctype.field("status").in_set or ()
    for silo_code, canonical in raw.get("status_map", {}).items():
        if canonical not in status:
            raise UnknownName(f"status for silo code {silo_code!r} in {where}", canonical, status)
    from quality import checks
    raw["checks"] = checks.parse(raw.get("checks", []), ctype.field_names, where)
    raw["gates"] = checks.parse_gates(raw.get("gates", {}), where)
    return Registration(**raw)


def load(path: Path) -> Registration:
    raw = tomlfile.load(path, str(path), TOP_KEYS)
    return Registration(**{**parse(raw, str(path)).__dict__, "path": path})


def load_all(directory: Path) -> dict[str, Registration]:
    regs: dict[str, Registration] = {}
    for path in sorted(directory.glob("*.toml")):
        reg = load(path)
        if reg.id in regs:
            raise ConfigError(f"source id {reg.id!r} is registered twice: {regs[reg.id].path}, {path}")
        regs[reg.id] = reg
    return regs


def get(source_id: str, directory: Path) -> Registration:
    regs = load_all(directory)
    if source_id not in regs:
        raise UnknownName("source", source_id, regs)
    return regs[source_id]
