"""Canonical certificate types, each defined once in schemas/types/NAME.toml."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from exchange.errors import ConfigError, UnknownName

TYPES_DIR = Path(__file__).with_name("types")
FIELD_TYPES = ("string", "date", "int", "bool")
CHECKS = {"uscc", "ric"}


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

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise UnknownName("field", name, self.field_names)

    def arrow_schema(self):
        """Conformed rows: every field nullable, since rows are checked after conforming."""
        import pyarrow as pa  # not at DAG parse time

        types = {"string": pa.string(), "date": pa.date32(), "int": pa.int64(), "bool": pa.bool_()}
        return pa.schema([pa.field(f.name, types[f.type]) for f in self.fields])


def _load(path: Path) -> CertificateType:
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    try:
        fields = tuple(Field(**{**f, "in_set": tuple(f["in_set"]) if "in_set" in f else None})
                       for f in raw.pop("fields"))
        rules = tuple(Rule(**r) for r in raw.pop("rules", []))
        ctype = CertificateType(fields=fields, rules=rules, **raw)
    except TypeError as exc:
        raise ConfigError(f"certificate type file {path.name}: {exc}") from None
    for f in fields:
        if f.type not in FIELD_TYPES:
            raise UnknownName(f"field type in {path.name}", f.type, FIELD_TYPES)
        if f.check and f.check not in CHECKS:
            raise UnknownName(f"identifier check in {path.name}", f.check, CHECKS)
    for r in rules:
        ctype.field(r.first), ctype.field(r.then)
    return ctype


@lru_cache(maxsize=None)
def all_types() -> dict[str, CertificateType]:
    return {p.stem: _load(p) for p in sorted(TYPES_DIR.glob("*.toml"))}


def get_type(name: str) -> CertificateType:
    types = all_types()
    if name not in types:
        raise UnknownName("certificate type", name, types)
    return types[name]
