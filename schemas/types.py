"""Canonical certificate types, each defined once in schemas/types/NAME.toml.

A type file holds the type's own fields; the GB/T 36903 common metadata every type shares is
in schemas/common_metadata.toml. The Arrow schema, the quality suite (quality/suites.py), the
API model (api/models.py), the documentation (schemas/docs.py) and the synthetic
silo (demo/synth_types.py) all derive from the definition.

Versions: `[history]` in the type file records each version's fields as "name:type". Adding
a field is compatible (record it under the current version); removing or retyping one needs
a new version. Loading refuses a definition that breaks its recorded version.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

from base import tomlfile
from base.errors import ConfigError, UnknownName

TYPES_DIR = Path(__file__).with_name("types")
COMMON_PATH = Path(__file__).with_name("common_metadata.toml")
FIELD_TYPES = ("string", "date", "int", "bool")
CHECKS = {"uscc", "ric"}
HOLDER_KINDS = {"organisation": ("uscc", "001"), "person": ("ric", "111")}
OVERRIDABLE = {"title", "required", "not_future"}
TYPE_KEYS = {"name", "title", "title_en", "type_code", "version", "department", "department_name",
             "holder_kind", "fields", "rules", "history", "overrides", "sample", "description"}
NAME_RE = re.compile(r"[a-z][a-z0-9_]{1,40}")
log = logging.getLogger(__name__)


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
        import pyarrow as pa  # lazy: not at DAG parse time (registrations read types)

        types = {"string": pa.string(), "date": pa.date32(), "int": pa.int64(), "bool": pa.bool_()}
        return pa.schema([pa.field(f.name, types[f.type]) for f in self.fields])


FIELD_KEYS = {"name": "string", "type": "string", "title": "string", "required": "boolean",
              "unique": "boolean", "check": "string", "in_set": "array of strings",
              "not_future": "boolean", "sample": None}
FIELD_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")
RULE_KINDS = ("ordered",)


def _field(raw, common: bool, key: str, where: str) -> Field:
    tomlfile.typed(raw, "table", key, where)
    tomlfile.check_keys(raw, where, set(FIELD_KEYS), {"name", "type"}, table=key)
    raw = dict(raw)
    for name, kind in FIELD_KEYS.items():
        if kind and name in raw:
            tomlfile.typed(raw[name], kind, tomlfile.key_of(key, name), where)
    tomlfile.matching(raw["name"], FIELD_RE, tomlfile.key_of(key, "name"), where,
                      "lower-case letters, digits and _, starting with a letter")
    sample = raw.get("sample")
    if sample is not None and not isinstance(sample, str):
        tomlfile.typed(sample, "array of strings", tomlfile.key_of(key, "sample"), where)
    for name in ("in_set", "sample"):
        if isinstance(raw.get(name), list):
            raw[name] = tuple(raw[name])
    return Field(**raw, common=common)


def _rule(raw, key: str, where: str) -> Rule:
    tomlfile.typed(raw, "table", key, where)
    tomlfile.check_keys(raw, where, {"kind", "first", "then", "title"}, {"kind", "first", "then"}, table=key)
    for name, value in raw.items():
        tomlfile.typed(value, "string", tomlfile.key_of(key, name), where)
    if raw["kind"] not in RULE_KINDS:
        raise UnknownName("rule kind", raw["kind"], RULE_KINDS, where=f"{where}: {key}.kind")
    return Rule(**raw)


@lru_cache(maxsize=1)
def common_fields() -> tuple[Field, ...]:
    where = COMMON_PATH.name
    raw = tomlfile.load(COMMON_PATH, where, {"fields"}, {"fields"})
    tomlfile.typed(raw["fields"], "array of tables", "fields", where)
    return tuple(_field(f, True, tomlfile.key_of("fields", i), where) for i, f in enumerate(raw["fields"]))


def _holder_fields(holder_kind: str, overrides: dict, where: str) -> list[Field]:
    if holder_kind not in HOLDER_KINDS:
        raise UnknownName("holder_kind", holder_kind, HOLDER_KINDS, where=f"{where}: holder_kind")
    check, code_type = HOLDER_KINDS[holder_kind]
    names = [f.name for f in common_fields()]
    for name, change in overrides.items():
        key = tomlfile.key_of("overrides", name)
        if name not in names:
            raise UnknownName("common field", name, names, where=f"{where}: {key}")
        tomlfile.typed(change, "table", key, where)
        for attr, value in change.items():
            if attr in OVERRIDABLE:
                tomlfile.typed(value, "string" if attr == "title" else "boolean", tomlfile.key_of(key, attr), where)
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


TYPE_TEXTS = {"title": 255, "title_en": 255, "department_name": 255, "description": 10_000}
TYPE_CODE_RE = re.compile(r"[0-9A-Z]{1,16}")


def _load(path: Path) -> CertificateType:
    where = f"certificate type file {path.name}"
    raw = tomlfile.load(path, where, TYPE_KEYS)
    name = raw.get("name")
    if name != path.stem or not NAME_RE.fullmatch(path.stem):
        raise ConfigError(f"{where}: name must be the file's stem {path.stem!r} (lower-case, digits, _), "
                          f"not {tomlfile.found(name) if name is not None else 'missing'}")
    tomlfile.check_keys(raw, where, TYPE_KEYS, {"title", "title_en", "type_code", "version",
                                                "department", "holder_kind"})
    for key, longest in TYPE_TEXTS.items():
        if key in raw:
            tomlfile.text(raw[key], key, where, longest)
    tomlfile.matching(raw["type_code"], TYPE_CODE_RE, "type_code", where, "digits and capital letters")
    tomlfile.between(raw["version"], 1, 10_000, "version", where)
    tomlfile.matching(raw["department"], NAME_RE, "department", where, "lower-case letters, digits and _")
    tomlfile.typed(raw["holder_kind"], "string", "holder_kind", where)
    for key, kind in (("fields", "array of tables"), ("rules", "array of tables"), ("history", "table"),
                      ("overrides", "table"), ("sample", "table")):
        if key in raw:
            tomlfile.typed(raw[key], kind, key, where)
    for v, sigs in raw.get("history", {}).items():
        key = tomlfile.key_of("history", v)
        if not re.fullmatch(r"[1-9][0-9]{0,4}", v):
            raise ConfigError(f"{where}: {key} is not allowed: a version number such as 1")
        tomlfile.typed(sigs, "array of strings", key, where)
    holder_kind = raw.pop("holder_kind")
    common = _holder_fields(holder_kind, raw.pop("overrides", {}), where)
    own = [_field(f, False, tomlfile.key_of("fields", i), where) for i, f in enumerate(raw.pop("fields", []))]
    rules = tuple(_rule(r, tomlfile.key_of("rules", i), where) for i, r in enumerate(raw.pop("rules", [])))
    history = tuple(sorted((int(v), tuple(sigs)) for v, sigs in raw.pop("history", {}).items()))
    sample = tuple(sorted(raw.pop("sample", {}).items()))
    ctype = CertificateType(fields=tuple(common + own), rules=rules, history=history,
                            sample=sample, path=path, holder_kind=holder_kind, **raw)
    seen = set()
    for f in ctype.fields:
        if f.name in seen:
            raise ConfigError(f"{where}: field {f.name!r} is defined twice (common metadata is "
                              "included already; change it under [overrides.FIELD])")
        seen.add(f.name)
        if f.type not in FIELD_TYPES:
            raise UnknownName("field type", f.type, FIELD_TYPES, where=f"{where}: field {f.name}")
        if f.check and f.check not in CHECKS:
            raise UnknownName("identifier check", f.check, CHECKS, where=f"{where}: field {f.name}")
    for i, r in enumerate(ctype.rules):
        for name in (r.first, r.then):
            if name not in ctype.field_names:
                raise UnknownName("field", name, ctype.field_names, where=f"{where}: rules[{i + 1}]")
    check_history(ctype, where)
    return ctype


def load_type(path: Path) -> CertificateType:
    return _load(Path(path))


class TypeSet(dict):
    """The certificate types that load, by name; `problems`: the files that do not, with why."""
    problems: dict[str, str]


def load_dir(directory: Path) -> TypeSet:
    """Every type file of a folder: a broken file is skipped and reported, hiding no other; a
    type code used twice is a problem of the later file."""
    out, problems, codes = TypeSet(), {}, {}
    for path in sorted(Path(directory).glob("*.toml")):
        try:
            ctype = _load(path)
        except ConfigError as exc:
            problems[str(path)] = tomlfile.one_line(str(exc))
            continue
        if ctype.type_code in codes:
            problems[str(path)] = (f"certificate type file {path.name}: type_code {ctype.type_code!r} "
                                   f"is already the code of {codes[ctype.type_code]}; each type has its own")
            continue
        codes[ctype.type_code] = ctype.name
        out[ctype.name] = ctype
    out.problems = problems
    return out


@cache
def all_types() -> TypeSet:
    types = load_dir(TYPES_DIR)
    for reason in types.problems.values():
        log.warning("certificate type file not loaded: %s", reason)
    return types


def type_problems() -> dict[str, str]:
    """path -> one-line reason of every type file in schemas/types that does not load."""
    return all_types().problems


def get_type(name: str, where: str | None = None) -> CertificateType:
    types = all_types()
    if name not in types:
        for path, reason in types.problems.items():
            if Path(path).stem == name:
                raise ConfigError(f"{where}: {reason}" if where else reason)
        raise UnknownName("certificate type", name, types, where=where)
    return types[name]
