"""Service items (事项): one code per item (一事一码), declared in schemas/items/*.toml.

Each item names its levels, power type and required materials. A material is either a
certificate type the exchange holds (and whose it is: the applicant, the legal representative,
the spouse …) or something the applicant submits; `later = true` marks it as one that may be
supplied after acceptance (容缺受理).

"三级四同": where an item is declared at city, district and township level (one file per
declaration), the name, code, materials and power type must agree; `mismatches` lists every
disagreement.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from base import tomlfile
from base.errors import ConfigError, NotFound, UnknownName
from schemas.types import all_types

ITEMS_DIR = Path(__file__).with_name("items")
LEVELS = ("city", "district", "township")            # 市级, 区县级, 乡镇(街道)级
POWER_TYPES = ("行政许可", "行政确认", "行政给付", "行政备案", "公共服务", "其他行政权力")
APPLICANTS = ("person", "organisation")
# whose certificate a material is, and the kind of holder that person or body is
# (None: whatever kind the applicant is, or either for the parties of a transfer)
WHOSE = {"applicant": None, "legal_representative": "person", "spouse": "person",
         "guardian": "person", "principal": "person", "transferor": None, "transferee": None}
CODE_RE = re.compile(r"^[A-Z]{2}-[A-Z]{2,5}-\d{4}$")
ITEM_KEYS = {"code", "name", "power_type", "levels", "applicant", "department", "description",
             "materials"}
MATERIAL_KEYS = {"name", "certificate", "whose", "later"}


@dataclass(frozen=True)
class Material:
    name: str
    certificate: str | None = None     # a certificate type held by the exchange, or None: submitted
    whose: str | None = None
    later: bool = False                # 容缺受理

    @property
    def held(self) -> bool:
        return self.certificate is not None

    def as_dict(self) -> dict:
        return {"name": self.name, "certificate": self.certificate, "whose": self.whose,
                "later": self.later, "source": "exchange" if self.held else "applicant"}


@dataclass(frozen=True)
class Item:
    code: str
    name: str
    power_type: str
    levels: tuple[str, ...]
    applicant: str
    materials: tuple[Material, ...]
    department: str = ""
    description: str = ""
    path: Path | None = None

    def as_dict(self) -> dict:
        return {"code": self.code, "name": self.name, "power_type": self.power_type,
                "levels": list(self.levels), "applicant": self.applicant,
                "department": self.department, "description": self.description,
                "materials": [m.as_dict() for m in self.materials]}


def _material(raw: dict, item_applicant: str, where: str) -> Material:
    unknown = set(raw) - MATERIAL_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown material keys {sorted(unknown)}; known: {sorted(MATERIAL_KEYS)}")
    if not raw.get("name"):
        raise ConfigError(f"{where}: a material needs a name")
    m = Material(**raw)
    if m.whose is not None and m.whose not in WHOSE:
        raise UnknownName(f"whose for material {m.name!r} in {where}", m.whose, WHOSE)
    if m.certificate is None:
        return m
    types = all_types()
    if m.certificate not in types:
        raise UnknownName(f"certificate type for material {m.name!r} in {where}", m.certificate, types)
    if m.whose is None:
        raise ConfigError(f"{where}: material {m.name!r} is a certificate ({m.certificate}); say whose "
                          f"it is with whose = one of {sorted(WHOSE)}")
    kind = WHOSE[m.whose] or (item_applicant if m.whose == "applicant" else None)
    held_by = types[m.certificate].holder_kind
    if kind and held_by != kind:
        raise ConfigError(f"{where}: material {m.name!r}: {m.certificate} is held by a {held_by}, "
                          f"but whose = {m.whose!r} is a {kind}")
    return m


def load_item(path: Path) -> Item:
    where = f"service item file {path.name}"
    raw = tomlfile.load(path, where, ITEM_KEYS,
                        {"code", "name", "power_type", "levels", "applicant", "materials"})
    if not CODE_RE.match(raw["code"]):
        raise ConfigError(f"{where}: code {raw['code']!r} must look like XK-SCJG-0001 "
                          "(kind, department, four digits)")
    if raw["power_type"] not in POWER_TYPES:
        raise UnknownName(f"power type in {where}", raw["power_type"], POWER_TYPES)
    if raw["applicant"] not in APPLICANTS:
        raise UnknownName(f"applicant kind in {where}", raw["applicant"], APPLICANTS)
    for level in raw["levels"]:
        if level not in LEVELS:
            raise UnknownName(f"level in {where}", level, LEVELS)
    if not raw["levels"] or not raw["materials"]:
        raise ConfigError(f"{where}: an item needs at least one level and one material")
    materials = tuple(_material(m, raw["applicant"], where) for m in raw.pop("materials"))
    return Item(**{**raw, "levels": tuple(raw["levels"]), "materials": materials, "path": path})


def load_entries(directory: Path = ITEMS_DIR) -> list[Item]:
    """Every declaration in a directory (subdirectories too), as written."""
    return [load_item(p) for p in sorted(Path(directory).rglob("*.toml"))]


def catalogue(directory: Path = ITEMS_DIR) -> dict[str, Item]:
    """code -> item. A code declared twice at the same level is refused; where a code is
    declared at several levels, the first declaration stands (see `mismatches`)."""
    items: dict[str, Item] = {}
    seen: dict[tuple[str, str], Path] = {}
    for item in load_entries(directory):
        for level in item.levels:
            if (item.code, level) in seen:
                raise ConfigError(f"service item {item.code} is declared twice at {level} level: "
                                  f"{seen[item.code, level]} and {item.path}")
            seen[item.code, level] = item.path
        if item.code in items:
            first = items[item.code]
            levels = tuple(lv for lv in LEVELS if lv in first.levels + item.levels)
            items[item.code] = Item(**{**first.__dict__, "levels": levels})
        else:
            items[item.code] = item
    return dict(sorted(items.items()))


def get_item(code: str, directory: Path = ITEMS_DIR) -> Item:
    items = catalogue(directory)
    if code not in items:
        raise NotFound(f"no service item {code!r}; known: {', '.join(items)}")
    return items[code]


def _material_keys(item: Item) -> list[str]:
    return sorted(f"{m.name} ({m.certificate or 'submitted'}, {m.whose or '-'}"
                  f"{', later' if m.later else ''})" for m in item.materials)


def _materials_key(item: Item) -> str:
    return "; ".join(_material_keys(item))


def mismatches(directory: Path = ITEMS_DIR) -> list[dict]:
    """Every disagreement between the levels an item is declared at (三级四同).

    Same code: name, power type and materials must agree. Same name: the code must agree.
    """
    from schemas.normalize import name_key_scalar  # lazy: pyarrow only for this check

    entries = load_entries(directory)
    out = []

    def where(item):
        return f"{'/'.join(item.levels)} ({item.path.name if item.path else '?'})"

    by_code = defaultdict(list)
    for e in entries:
        by_code[e.code].append(e)
    for code, group in sorted(by_code.items()):
        for attr, get in (("name", lambda i: i.name), ("power_type", lambda i: i.power_type),
                          ("materials", _materials_key)):
            values = {where(e): get(e) for e in group}
            if len(set(values.values())) > 1:
                found = {"code": code, "name": group[0].name, "attribute": attr, "values": values}
                if attr == "materials":   # the materials not every level asks for
                    sets = [set(_material_keys(e)) for e in group]
                    found["differing"] = sorted(set.union(*sets) - set.intersection(*sets))
                out.append(found)
    by_name = defaultdict(list)
    for e in entries:
        by_name[name_key_scalar(e.name)].append(e)
    for _name, group in sorted(by_name.items()):
        values = {where(e): e.code for e in group}
        if len(set(values.values())) > 1:
            out.append({"code": group[0].code, "name": group[0].name, "attribute": "code", "values": values})
    return out
