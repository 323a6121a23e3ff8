"""A synthetic market-regulation silo of business licences (营业执照), made in code.

Faker (zh_CN) fills small pools; rows are numpy choices over them, so a million rows take
seconds. Nothing here is real personal data. Deterministic for a seed (and a `today`).
"""
from __future__ import annotations

import functools
import json
import os
import re
import sqlite3
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from faker import Faker
from faker.providers.ssn.zh_CN import Provider as SsnProvider

from base import clock
from schemas.identifiers import USCC_ALPHABET, USCC_VALUES, strings_from_bytes, uscc_check_values
from schemas.normalize import name_key, opencc_convert

TABLE = "yyzz_djxx"
COLUMNS = ("ID", "ZCH", "TYSHXYDM", "QYMC", "FDDBR", "ZCZB", "QYLX", "ZS", "JYFW", "CLRQ", "FZRQ",
           "YYQXZ", "YYQXZHI", "DJJG", "DJJGDM", "XZQHDM", "DJZT", "GXSJ")
DEFECTS = ("bad_uscc_check", "blank_holder_name", "validity_inverted", "duplicate_licence_number",
           "bad_date", "issue_date_future")
DATE_COLUMNS = ("CLRQ", "FZRQ", "YYQXZ", "YYQXZHI")
OPEN_ENDED = "长期"

_ENTERPRISE_TYPES = (  # (QYLX, name suffix, weight)
    ("有限责任公司(自然人独资)", "有限公司", 30), ("有限责任公司(自然人投资或控股)", "有限公司", 30),
    ("有限责任公司(非自然人投资或控股的法人独资)", "有限公司", 8),
    ("股份有限公司(非上市、自然人投资或控股)", "股份有限公司", 5), ("个人独资企业", "经营部", 7),
    ("普通合伙企业", "中心(普通合伙)", 3), ("有限合伙企业", "企业(有限合伙)", 2),
    ("有限责任公司(外商投资、非独资)", "有限公司", 2))
_SOLE_TRADER, _COOPERATIVE = ("个体工商户", "店"), ("农民专业合作社", "专业合作社")
_INDUSTRIES = ("科技", "网络", "信息技术", "贸易", "商贸", "餐饮管理", "建筑工程", "农业开发", "物流",
               "电子商务", "文化传媒", "环保科技", "机械设备", "服装", "食品", "医疗器械", "教育咨询",
               "物业管理", "装饰工程", "汽车服务")
_SCOPES = ("技术开发、技术咨询、技术服务", "软件开发", "信息系统集成服务", "日用百货销售",
           "食品销售(仅销售预包装食品)", "餐饮服务", "建设工程施工", "货物进出口", "道路货物运输(不含危险货物)",
           "广告设计、代理", "企业管理咨询", "农产品的生产、销售、加工", "服装服饰零售", "五金产品批发",
           "物业管理", "机械设备租赁", "会议及展览服务", "家政服务", "电子产品销售", "组织文化艺术交流活动")
_SCOPE_TAIL = "。(依法须经批准的项目,经相关部门批准后方可开展经营活动)"
_STATUS = (("存续", 55), ("在业", 30), ("吊销", 6), ("注销", 7), ("迁出", 2))
_FIRST = ((b"9", 86), (b"1", 5), (b"5", 4), (b"N", 3), (b"Y", 2))  # registration authority
_DIGITS = np.frombuffer(b"0123456789", np.uint8)
_ALPHA = np.frombuffer(USCC_ALPHABET.encode(), np.uint8)
_EPOCH = date(1970, 1, 1)


def _weights(pairs) -> np.ndarray:
    w = np.array([p[-1] for p in pairs], float)
    return w / w.sum()


@functools.lru_cache(maxsize=4)
def _pools(seed: int) -> dict[str, pa.Array]:
    """Faker pools: a few thousand values each."""
    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    rnd = np.random.default_rng([seed, 99])
    regions = [c for c in SsnProvider.area_codes if not c.endswith("00")]
    n_auth = 600
    auth_region = np.array(regions)[rnd.choice(len(regions), n_auth, replace=False)]
    scopes = ["；".join(rnd.choice(_SCOPES, rnd.integers(2, 6), replace=False)) + _SCOPE_TAIL
              for _ in range(2000)]
    return {
        "city": pa.array(sorted({fake.city_name() for _ in range(400)})),
        "prefix": pa.array(sorted({fake.company_prefix() for _ in range(600)})),
        "person": pa.array([fake.name() for _ in range(4000)]),
        "street": pa.array([f"{fake.province()}{fake.city()}{fake.district()}区{fake.street_name()}"
                            for _ in range(3000)]),
        "auth_name": pa.array([f"{fake.city_name()}市{fake.district()}区市场监督管理局"
                               for _ in range(n_auth)]),
        "auth_region": pa.array(auth_region),
        "auth_code": pa.array([f"{r}{rnd.integers(1, 20):03d}" for r in auth_region]),
        "scope": pa.array(scopes),
    }


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """n x width ASCII digit matrix of non-negative integers."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return _DIGITS[(values[:, None] // powers) % 10]


def _unique_ints(rng, n: int, limit: int) -> np.ndarray:
    """n distinct integers below `limit`, in random order."""
    if n * 2 > limit:
        raise ValueError(f"at most {limit // 2} rows can be made, asked for {n}")
    return rng.permutation(np.cumsum(rng.integers(1, max(2, limit // n), n)))


def _zch(rng, region: np.ndarray) -> np.ndarray:
    """15-digit 注册号: region, sequence, ISO 7064 MOD 11,10 check digit (GS 15-2006)."""
    mat = np.concatenate([region, _digits(_unique_ints(rng, len(region), 10 ** 8), 8)], axis=1)
    p = np.full(len(mat), 10)
    for col in mat.T.astype(np.int64) - 48:
        s = (p + col) % 10
        p = (np.where(s == 0, 10, s) * 2) % 11
    return np.concatenate([mat, _DIGITS[(11 - p) % 10][:, None]], axis=1)


def _org_code(rng, n: int) -> np.ndarray:
    """9-char organisation code: 8 unique body characters + GB 11714 check character."""
    u = _unique_ints(rng, n, 10 ** 8)
    body = _digits(u, 8)
    ma = rng.random(n) < 0.6  # newer codes: "MA" + 6 characters
    base31 = _ALPHA[(u[:, None] // 31 ** np.arange(5, -1, -1, dtype=np.int64)) % 31]
    body[ma] = np.concatenate([np.tile(np.frombuffer(b"MA", np.uint8), (n, 1)), base31], axis=1)[ma]
    values = np.where(body <= ord("9"), body.astype(np.int64) - 48, body.astype(np.int64) - 55)
    c = 11 - (values @ np.array([3, 7, 9, 10, 5, 8, 4, 2])) % 11
    check = np.where(c == 10, ord("X"), np.where(c == 11, ord("0"), c + 48)).astype(np.uint8)
    return np.concatenate([body, check[:, None]], axis=1)


def _uscc(rng, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(USCC matrix n x 18, entity category digit) with correct check characters."""
    n = len(region)
    first = np.frombuffer(b"".join(f[0] for f in _FIRST), np.uint8)
    first = first[rng.choice(len(_FIRST), n, p=_weights(_FIRST))]
    category = np.where(first == ord("9"), rng.choice([1, 2, 3], n, p=[0.8, 0.17, 0.03]),
                        np.where(first == ord("Y"), 1, rng.choice([1, 2, 3, 9], n)))
    mat = np.concatenate([first[:, None], _DIGITS[category][:, None], region, _org_code(rng, n),
                          np.zeros((n, 1), np.uint8)], axis=1)
    mat[:, 17] = _ALPHA[uscc_check_values(USCC_VALUES[mat[:, :17]])]
    return mat, np.where(first == ord("9"), category, 0)


def _fmt_dates(y, m, d, form: np.ndarray) -> pa.StringArray:
    """20200102 | 2020-01-02 | 2020/1/2 | 2020年1月2日, chosen per row by `form` (0-3)."""
    ys, ms, ds = (pa.array(v).cast(pa.string()) for v in (y, m, d))
    mm, dd = pc.utf8_lpad(ms, 2, "0"), pc.utf8_lpad(ds, 2, "0")
    join = pc.binary_join_element_wise
    return pc.choose(pa.array(form, pa.int8()), join(ys, mm, dd, ""), join(ys, mm, dd, "-"),
                     join(ys, ms, ds, "/"), join(ys, "年", ms, "月", ds, "日", ""))


def _ymd(days: np.ndarray):
    dt = days.astype("datetime64[D]")
    months = dt.astype("datetime64[M]")
    return (dt.astype("datetime64[Y]").astype(np.int64) + 1970, months.astype(np.int64) % 12 + 1,
            (dt - months.astype("datetime64[D]")).astype(np.int64) + 1)


def _date_text(rng, days: np.ndarray) -> pa.StringArray:
    return _fmt_dates(*_ymd(days), rng.choice(4, len(days), p=[0.3, 0.35, 0.2, 0.15]))


def _put(arr: pa.Array, idx: np.ndarray, values) -> pa.Array:
    """`arr` with positions `idx` replaced by `values` (vectorised scatter)."""
    if len(idx) == 0:
        return arr
    take = np.arange(len(arr))
    take[idx] = len(arr) + np.arange(len(idx))
    values = values.cast(arr.type) if isinstance(values, pa.Array) else pa.array(values, arr.type)
    return pa.concat_arrays([arr, values]).take(pa.array(take))


def _split_defects(rng, n: int, rate: float) -> dict[str, np.ndarray]:
    rows = rng.permutation(n)[: int(round(n * rate))]
    counts = np.full(len(DEFECTS), len(rows) // len(DEFECTS))
    counts[: len(rows) % len(DEFECTS)] += 1
    dup = DEFECTS.index("duplicate_licence_number")
    counts[dup] -= counts[dup] % 2  # pairs; the odd row stays clean
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return {k: rows[bounds[i]:bounds[i + 1]] for i, k in enumerate(DEFECTS)}


def _base(n: int, seed: int, today: date) -> tuple[dict[str, pa.Array], dict[str, np.ndarray]]:
    """Clean columns, plus the raw parts defects are made from."""
    pools, rng = _pools(seed), np.random.default_rng(seed)
    today_d = (today - _EPOCH).days
    auth = pa.array(rng.integers(len(pools["auth_region"]), size=n))
    region_txt = pools["auth_region"].take(auth)
    region = np.frombuffer(pc.binary_join(pa.ListArray.from_arrays(
        pa.array([0, n], pa.int32()), region_txt), "")[0].as_py().encode(), np.uint8).reshape(n, 6)
    uscc, category = _uscc(rng, region)
    zch = _zch(rng, region)

    types = list(_ENTERPRISE_TYPES) + [_SOLE_TRADER + (0,), _COOPERATIVE + (0,)]
    kind = rng.choice(len(_ENTERPRISE_TYPES), n, p=_weights(_ENTERPRISE_TYPES))
    kind = np.where(category == 2, len(types) - 2, np.where(category == 3, len(types) - 1, kind))
    kind = pa.array(kind)

    def pick(pool) -> pa.Array:
        values = pools[pool] if isinstance(pool, str) else pa.array(pool)
        return values.take(pa.array(rng.integers(len(values), size=n)))

    join = pc.binary_join_element_wise
    suffix = pa.array([t[1] for t in types]).take(kind)
    qymc = join(pick("city"), pick("prefix"), pick(_INDUSTRIES), suffix, "")
    cap10 = np.maximum(1, np.round(rng.lognormal(np.log(200), 1.3, n) * 10)).astype(np.int64)
    cap10 = np.where(rng.random(n) < 0.8, np.maximum(10, cap10 // 10 * 10), cap10)
    whole = pa.array(cap10 // 10).cast(pa.string())
    zczb = pc.if_else(pa.array(cap10 % 10 == 0), whole,
                      join(whole, pa.array(cap10 % 10).cast(pa.string()), "."))

    start = (date(1995, 1, 1) - _EPOCH).days
    clrq = rng.integers(start, today_d - 30, n)
    fzrq = np.where(rng.random(n) < 0.6, clrq, clrq + (rng.random(n) * (today_d - clrq)).astype(np.int64))
    years = rng.choice([10, 20, 30, 50], n)
    valid_to = clrq + years * 365 + years // 4 - 1
    open_ended = rng.random(n) < 1 / 3
    gxsj = fzrq * 86400 + (rng.random(n) * ((today_d - fzrq) * 86400 + 86399)).astype(np.int64)
    cols = {
        "ID": pa.array(np.arange(1, n + 1, dtype=np.int64)),
        "ZCH": zch, "TYSHXYDM": uscc, "QYMC": qymc, "FDDBR": pick("person"), "ZCZB": zczb,
        "QYLX": pa.array([t[0] for t in types]).take(kind),
        "ZS": join(pick("street"), pa.array(rng.integers(1, 999, n)).cast(pa.string()), "号", ""),
        "JYFW": pick("scope"), "CLRQ": clrq, "FZRQ": fzrq, "YYQXZ": clrq.copy(), "YYQXZHI": valid_to,
        "DJJG": pools["auth_name"].take(auth), "DJJGDM": pools["auth_code"].take(auth),
        "XZQHDM": region_txt,
        "DJZT": pa.array([s[0] for s in _STATUS]).take(
            pa.array(rng.choice(len(_STATUS), n, p=_weights(_STATUS)))),
        "GXSJ": pc.strftime(pa.array(gxsj, pa.timestamp("s")), format="%Y-%m-%dT%H:%M:%S"),
    }
    return cols, {"open_ended": open_ended}


def _apply_defects(cols, extra, defects, rng, today: date) -> None:
    """Each listed row gets exactly its one defect; codes and dates are still raw here."""
    idx = defects["bad_uscc_check"]
    uscc = cols["TYSHXYDM"]
    uscc[idx, 17] = _ALPHA[(USCC_VALUES[uscc[idx, 17]] + rng.integers(1, 31, len(idx))) % 31]
    pairs = defects["duplicate_licence_number"]
    cols["ZCH"][pairs[0::2]] = cols["ZCH"][pairs[1::2]]
    idx = defects["validity_inverted"]
    cols["YYQXZHI"][idx] = cols["YYQXZ"][idx] - rng.integers(1, 3650, len(idx))
    extra["open_ended"][idx] = False
    idx = defects["issue_date_future"]
    cols["FZRQ"][idx] = (today - _EPOCH).days + rng.integers(1, 400, len(idx))

    for name in ("ZCH", "TYSHXYDM"):
        cols[name] = strings_from_bytes(cols[name])
    for name in DATE_COLUMNS:
        cols[name] = _date_text(rng, cols[name])
    cols["YYQXZHI"] = pc.if_else(pa.array(extra["open_ended"]), OPEN_ENDED, cols["YYQXZHI"])

    idx = defects["blank_holder_name"]
    blanks = np.array(["", " ", "  ", "\u3000", "\u200b", " \u200b\u3000 "])
    cols["QYMC"] = _put(cols["QYMC"], idx, blanks[rng.integers(len(blanks), size=len(idx))])
    idx = defects["bad_date"]  # impossible days and months
    k = len(idx)
    m = rng.choice([2, 4, 6, 9, 11, 13], k)
    d = np.where(m == 2, rng.choice([30, 31], k), np.where(m == 13, rng.integers(1, 29, k), 31))
    cols["FZRQ"] = _put(cols["FZRQ"], idx, _fmt_dates(rng.integers(2000, today.year + 1, k), m, d,
                                                      rng.integers(0, 4, k)))


def _full_width(arr: pa.Array) -> pa.Array:
    for digit in "0123456789":
        arr = pc.replace_substring(arr, digit, chr(0xFF10 + int(digit)))
    return arr


def _spaced(rng, arr: pa.Array) -> pa.Array:
    ws = pa.array(np.array([" ", "\u3000", "\u200b", "\ufeff", "\u00a0"])[rng.integers(5, size=len(arr))])
    head, tail = pc.utf8_slice_codeunits(arr, 0, 2), pc.utf8_slice_codeunits(arr, 2)
    join = pc.binary_join_element_wise
    return pc.choose(pa.array(rng.integers(3, size=len(arr)), pa.int8()),
                     join(ws, arr, ""), join(arr, ws, ""), join(head, ws, tail, ""))


def _traditional(arr: pa.Array) -> pa.Array:
    trad = opencc_convert(arr, "s2t")
    return pc.if_else(pc.equal(name_key(trad), name_key(arr)), trad, arr)  # only exact round trips


_COSMETICS = (("full_width", ("ZCH", "TYSHXYDM") + DATE_COLUMNS),
              ("spaces", ("ZCH", "TYSHXYDM", "QYMC", "FDDBR") + DATE_COLUMNS),
              ("lower", ("TYSHXYDM",)), ("traditional", ("QYMC", "FDDBR", "ZS")))


def _apply_cosmetics(cols, rows: np.ndarray, rng) -> np.ndarray:
    """Variations normalisation must undo; returns the rows that really changed."""
    before = {name: cols[name].take(pa.array(rows)) for name in cols}
    plan = [(kind, col) for kind, names in _COSMETICS for col in names]
    choice = rng.integers(len(plan), size=len(rows))
    for i, (kind, col) in enumerate(plan):
        idx = rows[choice == i]
        values = cols[col].take(pa.array(idx))
        new = {"full_width": _full_width, "lower": pc.utf8_lower, "traditional": _traditional,
               "spaces": functools.partial(_spaced, rng)}[kind](values)
        cols[col] = _put(cols[col], idx, new)
    changed = np.zeros(len(rows), bool)
    for name, old in before.items():
        diff = pc.fill_null(pc.not_equal(old, cols[name].take(pa.array(rows))), False)
        changed |= diff.to_numpy(zero_copy_only=False)
    return rows[changed]


def business_licences(n: int, seed: int = 7, defect_rate: float = 0.05, today: date | None = None,
                      cosmetic_rate: float = 0.03) -> tuple[pa.Table, dict[str, list[int]]]:
    """n silo rows and a manifest: defect kind (and "cosmetic") -> sorted IDs.

    Defects and cosmetic variations use their own random streams, so the same seed with
    cosmetic_rate=0 gives the same rows without the variations.
    """
    if n < 1 or not 0 <= defect_rate <= 1 or not 0 <= cosmetic_rate <= 1:
        raise ValueError(f"need n >= 1 and rates between 0 and 1; got n={n}, "
                         f"defect_rate={defect_rate}, cosmetic_rate={cosmetic_rate}")
    today = today or clock.today()
    cols, extra = _base(n, seed, today)
    defects = _split_defects(np.random.default_rng([seed, 1]), n, defect_rate)
    _apply_defects(cols, extra, defects, np.random.default_rng([seed, 2]), today)
    clean = np.ones(n, bool)
    for rows in defects.values():
        clean[rows] = False
    crng = np.random.default_rng([seed, 3])
    candidates = np.flatnonzero(clean)
    rows = crng.choice(candidates, min(len(candidates), int(round(n * cosmetic_rate))), replace=False)
    cosmetic = _apply_cosmetics(cols, np.sort(rows), crng)
    manifest = {k: sorted(int(i) + 1 for i in v) for k, v in defects.items()}
    manifest["cosmetic"] = [int(i) + 1 for i in cosmetic]
    return pa.table({name: cols[name] for name in COLUMNS}), manifest


def _sqlite_type(name: str, typ: pa.DataType) -> str:
    if name == "ID":
        return "INTEGER PRIMARY KEY"
    return "INTEGER" if pa.types.is_integer(typ) else "REAL" if pa.types.is_floating(typ) else "TEXT"


def _atomic_target(path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    return tmp


def _fsync_replace(tmp: Path, path: Path) -> None:
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_sqlite(table: pa.Table, path, table_name: str = TABLE, chunk_rows: int = 50_000) -> None:
    """Write `table` into a fresh SQLite file at `path`, replacing any old file atomically."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", table_name):
        raise ValueError(f"not a plain SQL table name: {table_name!r}")
    path = Path(path)
    tmp = _atomic_target(path)
    cols = ", ".join(f'"{f.name}" {_sqlite_type(f.name, f.type)}' for f in table.schema)
    insert = f'INSERT INTO "{table_name}" VALUES ({", ".join("?" * table.num_columns)})'
    con = sqlite3.connect(tmp, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=OFF")  # a temporary file: the rename is the commit
        con.execute("PRAGMA synchronous=OFF")
        con.execute(f'CREATE TABLE "{table_name}" ({cols})')
        con.execute("BEGIN")
        for batch in table.to_batches(chunk_rows):
            con.executemany(insert, zip(*(c.to_pylist() for c in batch.columns)))
        con.execute("COMMIT")
    except BaseException:
        con.close()
        tmp.unlink(missing_ok=True)
        raise
    con.close()
    _fsync_replace(tmp, path)


def make_business_licence_silo(path, n: int, seed: int = 7, defect_rate: float = 0.05,
                               today: date | None = None) -> dict:
    """Write the silo database and `<path>.manifest.json`; return the manifest."""
    path = Path(path)
    table, manifest = business_licences(n, seed=seed, defect_rate=defect_rate, today=today)
    write_sqlite(table, path)
    target = path.with_suffix(".manifest.json")
    tmp = _atomic_target(target)
    tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    _fsync_replace(tmp, target)
    return manifest
