"""Synthetic silos for any certificate type, driven by its definition and sample registration.

Column names come from the type's registration in demo/registrations/ (the silo side of its
`mapping`); values from the field definitions: `check` gives valid identifiers, `in_set` and
list `sample`s give choices, a string `sample` names a pool (SAMPLE_KINDS), dates come in the
forms silos use. A few rows get one planted defect each (listed in the manifest); a few clean
rows get cosmetic variations normalisation must undo. numpy over small Faker zh_CN pools: fast,
deterministic for a seed, and no real personal data.
"""
from __future__ import annotations

import functools
import json
import re
import tomllib
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from faker import Faker
from faker.providers.ssn.zh_CN import Provider as SsnProvider

import registration
from base import clock
from base.errors import UnknownName
from demo.synth import (
    _atomic_target,
    _date_text,
    _fmt_dates,
    _fsync_replace,
    _full_width,
    _put,
    _spaced,
    _traditional,
    _uscc,
    write_sqlite,
)
from schemas.identifiers import _USCC_CHARS, USCC_VALUES, strings_from_bytes, uscc_check_values
from schemas.types import CertificateType, get_type

REGISTRATIONS = Path(__file__).with_name("registrations")
SAMPLE_KINDS = ("person", "company", "address", "school", "hospital", "issuer", "amount", "digits:N")
DEFECTS = ("bad_holder_check", "blank_holder_name", "validity_inverted", "duplicate_licence_number",
           "bad_date", "issue_date_future", "unknown_status")
_EPOCH = date(1970, 1, 1)
_TEMPLATE = re.compile(r"\{(region|year|serial)(?::0?(\d+))?\}")


def sample_registration(type_name: str) -> registration.Registration:
    """The registration in demo/registrations/ whose certificate type is `type_name`."""
    found = []
    for path in sorted(REGISTRATIONS.glob("*.toml")):
        if tomllib.loads(path.read_text("utf-8")).get("certificate_type") == type_name:
            found.append(registration.load(path))
    if len(found) != 1:
        raise UnknownName(f"sample registration ({len(found)} found) for certificate type",
                          type_name, [p.stem for p in REGISTRATIONS.glob("*.toml")])
    return found[0]


@functools.lru_cache(maxsize=4)
def _pools(seed: int) -> dict[str, np.ndarray]:
    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    rnd = np.random.default_rng([seed, 7])
    regions = np.array([c for c in SsnProvider.area_codes if not c.endswith("00")])
    cities = [fake.city_name() for _ in range(300)]
    return {
        "region": regions[rnd.choice(len(regions), 400, replace=False)],
        "person": np.array([fake.name() for _ in range(3000)]),
        "ric": np.array(sorted({fake.ssn(min_age=18, max_age=85) for _ in range(4000)})),
        "company": np.array(sorted({fake.company() for _ in range(3000)})),
        "address": np.array([f"{fake.province()}{fake.city()}{fake.district()}区{fake.street_name()}"
                             f"{rnd.integers(1, 999)}号" for _ in range(3000)]),
        "school": np.array([f"{c}{s}" for c in cities[:80]
                            for s in ("大学", "职业技术学院", "师范学院")]),
        "hospital": np.array([f"{c}市第{rnd.integers(1, 9)}人民医院" for c in cities[:200]]),
        "city": np.array(cities),
        "district": np.array([fake.district() for _ in range(300)]),
    }


def _pick(rng, pool: np.ndarray, n: int) -> np.ndarray:
    return pool[rng.integers(len(pool), size=n)]


def _uscc_text(rng, region: np.ndarray, organ: bool = False) -> pa.StringArray:
    mat = np.frombuffer("".join(region).encode(), np.uint8).reshape(len(region), 6)
    codes, _ = _uscc(rng, mat)
    if organ:   # government bodies: registration authority 1 (机构编制), category 1 (机关)
        codes[:, :2] = np.frombuffer(b"11", np.uint8)
        codes[:, 17] = _USCC_CHARS[uscc_check_values(USCC_VALUES[codes[:, :17]])]
    return strings_from_bytes(codes)


def _digits(rng, n: int, width: int) -> pa.StringArray:
    mat = rng.integers(0, 10, (n, width)).astype(np.uint8) + ord("0")
    mat[:, 0] = rng.integers(1, 10, n) + ord("0")
    return strings_from_bytes(mat)


def _numbers(template: str, rng, region: np.ndarray, year: np.ndarray) -> pa.Array:
    """Licence numbers from a template like "JY{region}{serial:08}"; serials are distinct."""
    n = len(region)
    parts, pos = [], 0
    for m in _TEMPLATE.finditer(template):
        parts.append(pa.array([template[pos:m.start()]] * n))
        kind, width = m.group(1), int(m.group(2) or 6)
        if kind == "region":
            parts.append(pa.array(region))
        elif kind == "year":
            parts.append(pa.array(year.astype(str)))
        else:
            if n > 10 ** width // 2:
                raise ValueError(f"template {template!r} makes at most {10 ** width // 2} numbers, asked {n}")
            serial = rng.choice(10 ** width, n, replace=False)
            parts.append(pc.utf8_lpad(pa.array(serial.astype(str)), width, "0"))
        pos = m.end()
    parts.append(pa.array([template[pos:]] * n))
    return pc.binary_join_element_wise(*parts, "")


def _values(f, rng, n: int, pools, ctx) -> pa.Array:
    """Clean values of one field of its own kind (dates are returned as day numbers)."""
    if f.check == "ric":
        return pa.array(_pick(rng, pools["ric"], n))
    if f.check == "uscc":
        return _uscc_text(rng, _pick(rng, pools["region"], n))
    if f.type == "date":
        return ctx["issue"] - rng.integers(0, 30, n)
    choices = f.in_set or (f.sample if isinstance(f.sample, tuple) else None)
    if choices:
        return pa.array(np.array(choices)[rng.integers(len(choices), size=n)])
    kind = f.sample or ""
    if kind in ("person", "company", "address", "school", "hospital"):
        return pa.array(_pick(rng, pools[kind], n))
    if kind == "issuer":
        return ctx["issuer_name"]
    if kind == "amount":
        return pa.array(np.round(rng.lognormal(np.log(100), 1.0, n), 2).astype(str))
    if kind.startswith("digits:"):
        return _digits(rng, n, int(kind.split(":")[1]))
    raise UnknownName(f"sample kind of field {f.name}", kind or "(none)", SAMPLE_KINDS)


def _clean(ctype: CertificateType, reg, n: int, seed: int, today: date):
    """Canonical field -> clean values (date fields as day numbers, None where open-ended)."""
    pools, rng = _pools(seed), np.random.default_rng([seed, 1])
    hints = ctype.sample_hints
    today_d = (today - _EPOCH).days
    issuers = _pick(rng, pools["region"], 60)
    issuer_names = np.array([f"{c}市{d}区{ctype.department_name or ctype.department}" for c, d in
                             zip(_pick(rng, pools["city"], 60), _pick(rng, pools["district"], 60))])
    issuer_codes = _uscc_text(rng, issuers, organ=True)
    which = rng.integers(60, size=n)
    region = issuers[which]
    issue = rng.integers(today_d - 20 * 365, today_d - 30, n)
    ctx = {"issue": issue, "issuer_name": pa.array(issuer_names[which])}
    if "validity_days" in hints:
        length = np.array(hints["validity_days"])[rng.integers(len(hints["validity_days"]), size=n)]
    else:
        years = np.array(hints.get("validity_years", [0]))[rng.integers(len(hints.get("validity_years", [0])), size=n)]
        length = np.where(years > 0, years * 365 + years // 4, 0)
    statuses = list(reg.status_map) or list(ctype.field("status").in_set)
    weights = np.array([10.0] + [1.0] * (len(statuses) - 1))
    person = ctype.holder_kind == "person"
    out = {
        "licence_name": pa.array([ctype.title] * n),
        "licence_type_code": pa.array([ctype.type_code] * n),
        "licence_number": _numbers(hints.get("number", "{region}{serial:08}"), rng, region,
                                   (issue // 365 + 1970)),
        "holder_name": pa.array(_pick(rng, pools["person" if person else "company"], n)),
        "holder_code": pa.array(_pick(rng, pools["ric"], n)) if person else _uscc_text(rng, region),
        "holder_code_type": pa.array(["111" if person else "001"] * n),
        "issuer_name": ctx["issuer_name"], "issuer_code": issuer_codes.take(pa.array(which)),
        "issue_date": issue, "valid_from": issue.copy(),
        "valid_to": np.where(length > 0, issue + length - 1, -1),
        "jurisdiction_code": pa.array(region),
        "status": pa.array(np.array(statuses)[rng.choice(len(statuses), n, p=weights / weights.sum())]),
        "licence_id": pa.nulls(n, pa.string()), "related_licence_id": pa.nulls(n, pa.string()),
    }
    for f in ctype.own_fields:
        if f.name in reg.mapping:
            out[f.name] = _values(f, rng, n, pools, ctx)
    for r in ctype.rules:   # an own date that must come first: 1 to 5 years before the other
        if r.kind == "ordered" and r.first in out and not ctype.field(r.first).common:
            out[r.first] = out[r.then] - rng.integers(365, 5 * 365, n)
    return out


def _split(rng, n: int, rate: float, kinds: list[str]) -> dict[str, np.ndarray]:
    rows = rng.permutation(n)[: int(round(n * rate))]
    parts = np.array_split(rows, len(kinds))
    out = dict(zip(kinds, parts))
    if "duplicate_licence_number" in out:
        d = out["duplicate_licence_number"]
        out["duplicate_licence_number"] = d[: len(d) - len(d) % 2]
    return out


def silo_table(type_name: str, n: int, seed: int = 5, defect_rate: float = 0.05,
               cosmetic_rate: float = 0.03, today: date | None = None):
    """(silo table with an ID column and the registration's silo columns, manifest, registration).

    The manifest maps each planted defect kind (and "cosmetic") to the silo IDs it touched.
    """
    ctype, reg = get_type(type_name), sample_registration(type_name)
    today = today or clock.today()
    vals = _clean(ctype, reg, n, seed, today)
    rng = np.random.default_rng([seed, 2])
    inverted_ok = any(r.kind == "ordered" and (r.first, r.then) == ("valid_from", "valid_to")
                      for r in ctype.rules) and "valid_to" in reg.mapping
    kinds = [k for k in DEFECTS if k != "validity_inverted" or inverted_ok]
    defects = _split(rng, n, defect_rate, kinds)
    check = ctype.field("holder_code").check

    idx = defects["bad_holder_check"]
    codes = vals["holder_code"].to_numpy(zero_copy_only=False).astype(str)
    alphabet = "0123456789X" if check == "ric" else "0123456789ABCDEFGHJKLMNPQRTUWXY"
    wrong = [next(c for c in alphabet[rng.integers(len(alphabet)):] + alphabet if c != code[17])
             for code in codes[idx]]
    vals["holder_code"] = _put(vals["holder_code"], idx, [c[:17] + w for c, w in zip(codes[idx], wrong)])
    pairs = defects["duplicate_licence_number"]
    vals["licence_number"] = _put(vals["licence_number"], pairs[0::2],
                                  vals["licence_number"].take(pa.array(pairs[1::2])))
    if "validity_inverted" in defects:
        idx = defects["validity_inverted"]
        vals["valid_to"][idx] = vals["valid_from"][idx] - rng.integers(1, 3650, len(idx))
    today_d = (today - _EPOCH).days
    idx = defects["issue_date_future"]
    vals["issue_date"][idx] = today_d + rng.integers(1, 400, len(idx))

    vals["status"] = _put(vals["status"], defects["unknown_status"], ["待核实"] * len(defects["unknown_status"]))

    for name in list(vals):
        if ctype.field(name).type == "date":
            days = vals[name]
            text = _date_text(rng, np.where(days >= 0, days, 0))
            blank = pa.array(days < 0)
            open_text = pa.array(np.where(rng.random(n) < 0.5, "长期", ""))
            vals[name] = pc.if_else(blank, open_text, text)
    idx = defects["blank_holder_name"]
    vals["holder_name"] = _put(vals["holder_name"], idx, np.array(["", " ", "\u3000", "\u200b"])[
        rng.integers(4, size=len(idx))])
    idx = defects["bad_date"]
    k = len(idx)
    m = rng.choice([2, 4, 6, 9, 11, 13], k)
    d = np.where(m == 2, 30, np.where(m == 13, 10, 31))
    vals["issue_date"] = _put(vals["issue_date"], idx, _fmt_dates(rng.integers(2000, today.year, k), m, d,
                                                                  rng.integers(0, 4, k)))
    cosmetic = _cosmetics(vals, defects, n, cosmetic_rate, np.random.default_rng([seed, 3]))
    cols = {"ID": pa.array(np.arange(1, n + 1, dtype=np.int64))}
    cols |= {column: vals[field] for field, column in reg.mapping.items()}
    manifest = {k: sorted(int(i) + 1 for i in v) for k, v in defects.items()}
    manifest["cosmetic"] = sorted(int(i) + 1 for i in cosmetic)
    return pa.table(cols), manifest, reg


_COSMETICS = (("full_width", "holder_code"), ("full_width", "issue_date"), ("spaces", "holder_code"),
              ("spaces", "holder_name"), ("lower", "holder_code"), ("traditional", "holder_name"))


def _cosmetics(vals, defects, n, rate, rng) -> np.ndarray:
    """Variations on clean rows that normalisation must undo; returns the rows changed."""
    clean = np.ones(n, bool)
    for rows in defects.values():
        clean[rows] = False
    rows = np.sort(rng.choice(np.flatnonzero(clean), min(clean.sum(), int(round(n * rate))), replace=False))
    choice = rng.integers(len(_COSMETICS), size=len(rows))
    changed = np.zeros(len(rows), bool)
    for i, (kind, name) in enumerate(_COSMETICS):
        sel = choice == i
        before = vals[name].take(pa.array(rows[sel]))
        after = {"full_width": _full_width, "lower": pc.utf8_lower, "traditional": _traditional,
                 "spaces": functools.partial(_spaced, rng)}[kind](before)
        vals[name] = _put(vals[name], rows[sel], after)
        changed[sel] = pc.fill_null(pc.not_equal(before, after), False).to_numpy(zero_copy_only=False)
    return rows[changed]


def make_silo(type_name: str, path, n: int, seed: int = 5, defect_rate: float = 0.05,
              today: date | None = None) -> dict:
    """Write a SQLite silo for the type (table from its registration) and `<path>.manifest.json`."""
    path = Path(path)
    table, manifest, reg = silo_table(type_name, n, seed, defect_rate, today=today)
    write_sqlite(table, path, reg.connector["table"])
    target = path.with_suffix(".manifest.json")
    tmp = _atomic_target(target)
    tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    _fsync_replace(tmp, target)
    return manifest
