"""Canonical certificate types, each defined once in schemas/types/NAME.toml.

A type file holds the type's own fields; the GB/T 36903 common metadata every type shares is
in schemas/common_metadata.toml. The Arrow schema, the quality suite (quality/suites.py), the
API model (schemas/api_models.py), the documentation (schemas/docs.py) and the synthetic
silo (demo/synth_types.py) all derive from the definition.

Versions: `[history]` in the type file records each version's fields as "name:type". Adding
a field is compatible (record it under the current version); removing or retyping one needs
a new version. Loading refuses a definition that breaks its recorded version.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from exchange import tomlfile
from exchange.errors import ConfigError, UnknownName

TYPES_DIR = Path(__file__).with_name("types")
COMMON_PATH = Path(__file__).with_name("common_metadata.toml")
FIELD_TYPES = ("string", "date", "int", "bool")
CHECKS = {"uscc", "ric"}
HOLDER_KINDS = {"organisation": ("uscc", "001"), "person": ("ric", "111")}
OVERRIDABLE = {"title", "required", "not_future"}
TYPE_KEYS = {"name", "title", "title_en", "type_code", "version", "department", "department_name",
             "holder_kind", "fields", "rules", "history", "overrides", "sample", "description"}
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{1,40}$")


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    title: str = ""
    required: bool = False
    unique: bool = False
    check: str | None = None          # identifier check: uscc | ric
    in_set: tuple[str, ...] | None = None
    not_future: bool = False
    sample: str | tuple[str, ...] | None = None   # synthetic value kind (demo/synth_types.py)
    common: bool = False              # GB/T 36903 common metadata

    @property
    def signature(self) -> str:
        return f"{self.name}:{self.type}"


@dataclass(frozen=True)
class Rule:
    kind: str
    first: str
    then: str
    title: str = ""


@dataclass(frozen=True)
class CertificateType:
    name: str
    title: str
    title_en: str
    type_code: str
    version: int
    department: str
    holder_kind: str
    fields: tuple[Field, ...]
    rules: tuple[Rule, ...] = field(default=())
    department_name: str = ""
    description: str = ""
    history: tuple[tuple[int, tuple[str, ...]], ...] = ()   # (version, "name:type" ...)
    sample: tuple[tuple[str, object], ...] = ()             # synthetic-data hints
    path: Path | None = None

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def own_fields(self) -> list[Field]:
        return [f for f in self.fields if not f.common]

    @property
    def sample_hints(self) -> dict:
        return dict(self.sample)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise UnknownName("field", name, self.field_names)

    def fields_of(self, version: int) -> tuple[str, ...]:
        for v, sig in self.history:
            if v == version:
                return sig
        raise UnknownName(f"recorded version of {self.name}", str(version), [str(v) for v, _ in self.history])

    @property
    def unrecorded_fields(self) -> list[str]:
        """Fields added since the current version's entry in [history] was written."""
        recorded = set(self.fields_of(self.version))
        return [f.signature for f in self.fields if f.signature not in recorded]

    def arrow_schema(self):
        """Conformed rows: every field nullable, since rows are checked after conforming."""
        import pyarrow as pa  # not at DAG parse time

        types = {"string": pa.string(), "date": pa.date32(), "int": pa.int64(), "bool": pa.bool_()}
        return pa.schema([pa.field(f.name, types[f.type]) for f in self.fields])


def _field(raw: dict, common: bool) -> Field:
    raw = dict(raw)
    for key in ("in_set", "sample"):
        if isinstance(raw.get(key), list):
            raw[key] = tuple(raw[key])
    return Field(**raw, common=common)


@lru_cache(maxsize=1)
def common_fields() -> tuple[Field, ...]:
    raw = tomllib.loads(COMMON_PATH.read_text(encoding="utf-8"))
    return tuple(_field(f, True) for f in raw["fields"])


def _holder_fields(holder_kind: str, overrides: dict, where: str) -> list[Field]:
    if holder_kind not in HOLDER_KINDS:
        raise UnknownName(f"holder_kind in {where}", holder_kind, HOLDER_KINDS)
    check, code_type = HOLDER_KINDS[holder_kind]
    out = []
    for f in common_fields():
        attrs = dict(f.__dict__)
        if f.name == "holder_code":
            attrs["check"] = check
        if f.name == "holder_code_type":
            attrs["in_set"] = (code_type,)
        change = overrides.get(f.name, {})
        bad = set(change) - OVERRIDABLE
        if bad:
            raise ConfigError(f"{where}: [overrides.{f.name}] may set only {sorted(OVERRIDABLE)}, "
                              f"not {sorted(bad)}")
        out.append(Field(**{**attrs, **change}))
    return out


def check_history(ctype: CertificateType, where: str) -> None:
    """Refuse a definition that removes or retypes a field of its recorded version."""
    versions = [v for v, _ in ctype.history]
    if ctype.version not in versions:
        raise ConfigError(
            f"{where}: version {ctype.version} is not recorded under [history]; add "
            f"{ctype.version} = {[f.signature for f in ctype.fields]} (see README: adding a certificate type)")
    if max(versions) > ctype.version:
        raise ConfigError(f"{where}: [history] has version {max(versions)}, newer than version = {ctype.version}")
    current = {f.signature for f in ctype.fields}
    names = {f.name: f.signature for f in ctype.fields}
    broken = []
    for sig in ctype.fields_of(ctype.version):
        if sig not in current:
            name = sig.split(":")[0]
            broken.append(f"{sig} retyped to {names[name]}" if name in names else f"{sig} removed")
    if broken:
        raise ConfigError(
            f"{where}: incompatible change to version {ctype.version} of {ctype.name}: "
            f"{'; '.join(broken)}. Removing or retyping a field needs a new version: set "
            f"version = {ctype.version + 1} and record its fields under [history]")


def _load(path: Path) -> CertificateType:
    where = f"certificate type file {path.name}"
    raw = tomlfile.load(path, where, TYPE_KEYS)
    if raw.get("name") != path.stem or not NAME_RE.match(path.stem):
        raise ConfigError(f"{where}: name must be the file's stem {path.stem!r} (lower-case, digits, _)")
    try:
        holder_kind = raw.pop("holder_kind", "")
        common = _holder_fields(holder_kind, raw.pop("overrides", {}), where)
        own = [_field(f, False) for f in raw.pop("fields", [])]
        rules = tuple(Rule(**r) for r in raw.pop("rules", []))
        history = tuple(sorted((int(v), tuple(sigs)) for v, sigs in raw.pop("history", {}).items()))
        sample = tuple(sorted(raw.pop("sample", {}).items()))
        ctype = CertificateType(fields=tuple(common + own), rules=rules, history=history,
                                sample=sample, path=path, holder_kind=holder_kind, **raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    seen = set()
    for f in ctype.fields:
        if f.name in seen:
            raise ConfigError(f"{where}: field {f.name!r} is defined twice (common metadata is "
                              "included already; change it under [overrides.FIELD])")
        seen.add(f.name)
        if f.type not in FIELD_TYPES:
            raise UnknownName(f"field type in {path.name}", f.type, FIELD_TYPES)
        if f.check and f.check not in CHECKS:
            raise UnknownName(f"identifier check in {path.name}", f.check, CHECKS)
    for r in ctype.rules:
        ctype.field(r.first), ctype.field(r.then)
    check_history(ctype, where)
    return ctype


def load_type(path: Path) -> CertificateType:
    return _load(Path(path))


@lru_cache(maxsize=None)
def all_types() -> dict[str, CertificateType]:
    return {p.stem: _load(p) for p in sorted(TYPES_DIR.glob("*.toml"))}


def get_type(name: str) -> CertificateType:
    types = all_types()
    if name not in types:
        raise UnknownName("certificate type", name, types)
    return types[name]
