"""Map a silo's columns onto a canonical certificate type, vectorised over Arrow batches.

Original text is kept (trimmed); a missing licence identifier is derived in the structure of
GB/T 36904 (schemas/licence_id.py); codes are normalised (NFKC, no spaces, upper case);
dates are parsed from the forms silos use; where a date's text could not be parsed (or is
"长期" where validity cannot be open-ended) the text is kept in `_unparsed_<field>`, so the
quality step can name the row, the rule and the offending value.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from exchange.errors import DataError
from exchange.registry import Registration
from schemas import licence_id
from schemas.identifiers import holder_code_type
from schemas.normalize import clean_text, code_key, name_key, parse_dates
from schemas.types import CertificateType, Field

ROW = "_row"               # 1-based row number in extraction order
HELPERS = ("holder_key", "holder_name_key")


def is_code(f: Field) -> bool:
    return bool(f.check) or f.name.endswith(("_code", "_number", "_id"))


UNPARSED = "_unparsed_"


def raw_name(field: str) -> str:
    return f"{UNPARSED}{field}"


def conformed_schema(ctype: CertificateType) -> pa.Schema:
    schema = ctype.arrow_schema()
    extra = [pa.field(ROW, pa.int64()), *(pa.field(h, pa.string()) for h in HELPERS)]
    extra += [pa.field(raw_name(f.name), pa.string()) for f in ctype.fields if f.type == "date"]
    return pa.schema([*extra, *schema])


def missing_columns(reg: Registration, silo_columns: list[str]) -> list[str]:
    return [c for c in reg.mapping.values() if c not in silo_columns]


def conform(batch: pa.RecordBatch, reg: Registration) -> pa.RecordBatch:
    ctype = reg.ctype
    n = batch.num_rows
    names = batch.schema.names
    gone = missing_columns(reg, names)
    if gone:
        raise DataError(f"mapped silo columns {gone} are missing (silo has {names})",
                        source=reg.id, rule="schema: mapped column present")
    out: dict[str, pa.Array] = {ROW: batch.column(ROW)}
    unparsed: dict[str, pa.Array] = {}
    for f in ctype.fields:
        if f.name in reg.mapping:
            col = batch.column(reg.mapping[f.name])
        elif f.name in reg.constants:
            col = pa.array([reg.constants[f.name]] * n, pa.string())
        else:
            col = pa.nulls(n, pa.string())
        if f.type == "date":
            parsed = parse_dates(col)
            bad = parsed.invalid if not f.required else pc.or_(parsed.invalid, parsed.open_ended)
            unparsed[f.name] = pc.if_else(bad, clean_text(col), pa.scalar(None, pa.string()))
            out[f.name] = parsed.dates
        elif f.name == "status":
            out[f.name] = _map_status(clean_text(col), reg.status_map)
        elif is_code(f):
            out[f.name] = code_key(col)
        else:
            out[f.name] = clean_text(col)
    if "licence_type_code" not in reg.mapping and "licence_type_code" not in reg.constants:
        out["licence_type_code"] = pa.array([ctype.type_code] * n, pa.string())
    if "licence_name" not in reg.mapping and "licence_name" not in reg.constants:
        out["licence_name"] = pa.array([ctype.title] * n, pa.string())
    if "holder_code_type" not in reg.mapping and "holder_code_type" not in reg.constants:
        out["holder_code_type"] = holder_code_type(out["holder_code"])
    derived = licence_id.derive(ctype.type_code, out["issuer_code"], out["licence_number"])
    out["licence_id"] = pc.coalesce(out["licence_id"], derived)
    out["holder_key"] = out["holder_code"]
    out["holder_name_key"] = name_key(out["holder_name"])
    for name, col in unparsed.items():
        out[raw_name(name)] = col
    schema = conformed_schema(ctype)
    return pa.RecordBatch.from_arrays([out[f.name] for f in schema], schema=schema)


def _map_status(col: pa.Array, status_map: dict[str, str]) -> pa.Array:
    if not status_map:
        return col
    keys = pa.array(list(status_map), pa.string())
    values = pa.array(list(status_map.values()), pa.string())
    idx = pc.index_in(col, value_set=keys)
    mapped = pc.take(values, idx)
    return pc.coalesce(mapped, col)   # unmapped codes stay as the silo wrote them
