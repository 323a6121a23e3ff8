"""Map a silo's columns onto a canonical certificate type, vectorised over Arrow batches.

Original text is kept (trimmed); a missing licence identifier is derived in the structure of
GB/T 36904 (schemas/licence_id.py); codes are normalised (NFKC, no spaces, upper case);
dates are parsed from the forms silos use; where a date's text could not be parsed (or is
"长期" where validity cannot be open-ended) the text is kept in `_unparsed_<field>`, so the
quality step can name the row, the rule and the offending value.
"""
from __future__ import annotations

from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from base.errors import DataError
from schemas import licence_id
from schemas.distinct import Distinct
from schemas.identifiers import holder_code_type
from schemas.normalize import clean_text, code_key, is_blank, name_key, parse_dates
from schemas.source_map import SourceMap
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


def missing_columns(mapping: dict[str, str], silo_columns: list[str]) -> list[str]:
    return [c for c in mapping.values() if c not in silo_columns]


class Dated(NamedTuple):
    dates: pa.Date32Array
    unparsed: pa.StringArray      # the cleaned text where it is not an acceptable date


class _DatedBoth(NamedTuple):
    """_dates_both: the dates, the kept text of a field not required and of one required."""
    dates: pa.Date32Array
    unparsed: pa.StringArray
    unparsed_required: pa.StringArray


class Conformer:
    """conform() for the batches of one run, shareable between threads.

    Every normalisation here is elementwise, so each runs once per distinct value and is
    remembered from batch to batch (schemas/distinct.py): the output is the same as the
    direct path's, value for value.
    """

    def __init__(self, source: SourceMap):
        self.src, self.ctype = source, source.ctype
        # the date fields share one parse per distinct text: a silo's date columns hold
        # mostly the same dates (issued, valid from, established …)
        self._dates = Distinct(_dates_both)
        self.fields = {f.name: self._normaliser(f) for f in self.ctype.fields if f.type != "date"}
        self.holder_code_type = Distinct(holder_code_type)
        self.name_key = Distinct(name_key)

    def _normaliser(self, f: Field):
        """The field's normalisation; the costly ones by distinct value (trimming is cheaper
        than hashing). Date fields are conformed together (_conform_dates)."""
        if f.name == "status":
            return lambda col: _map_status(clean_text(col), self.src.status_map)
        return Distinct(code_key) if is_code(f) else clean_text

    def _conform_dates(self, cols: list[tuple[Field, pa.Array]]) -> dict[str, Dated]:
        """The batch's date columns looked up together in one Distinct (a silo's date columns
        hold mostly the same dates: issued, valid from, established …), each parsed once."""
        both = self._dates.many([c for _, c in cols])
        return {f.name: Dated(b.dates, b.unparsed_required if f.required else b.unparsed)
                for (f, _), b in zip(cols, both)}

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        src, ctype = self.src, self.ctype
        n = batch.num_rows
        names = batch.schema.names
        gone = missing_columns(src.mapping, names)
        if gone:
            raise DataError(f"mapped silo columns {gone} are missing (silo has {names})",
                            source=src.source, rule="schema: mapped column present")
        out: dict[str, pa.Array] = {ROW: batch.column(ROW)}
        cols: list[tuple[Field, pa.Array]] = []
        for f in ctype.fields:
            if f.name in src.mapping:
                cols.append((f, batch.column(src.mapping[f.name])))
            elif f.name in src.constants:
                cols.append((f, pa.repeat(pa.scalar(src.constants[f.name], pa.string()), n)))
            else:
                cols.append((f, pa.nulls(n, pa.string())))
        dated = self._conform_dates([(f, c) for f, c in cols if f.type == "date"])
        for f, col in cols:
            if f.type == "date":
                out[f.name] = dated[f.name].dates
            else:
                out[f.name] = self.fields[f.name](col)
        if "licence_type_code" not in src.mapping and "licence_type_code" not in src.constants:
            out["licence_type_code"] = pa.repeat(pa.scalar(ctype.type_code, pa.string()), n)
        if "licence_name" not in src.mapping and "licence_name" not in src.constants:
            out["licence_name"] = pa.repeat(pa.scalar(ctype.title, pa.string()), n)
        if "holder_code_type" not in src.mapping and "holder_code_type" not in src.constants:
            out["holder_code_type"] = self.holder_code_type(out["holder_code"])
        derived = licence_id.derive(ctype.type_code, out["issuer_code"], out["licence_number"])
        out["licence_id"] = pc.coalesce(out["licence_id"], derived)
        out["holder_key"] = out["holder_code"]
        out["holder_name_key"] = self.name_key(out["holder_name"])
        for name, d in dated.items():
            out[raw_name(name)] = d.unparsed
        schema = conformed_schema(ctype)
        return pa.RecordBatch.from_arrays([out[f.name] for f in schema], schema=schema)


def conform(batch: pa.RecordBatch, source: SourceMap) -> pa.RecordBatch:
    """One batch on its own; a run's batches share a Conformer."""
    return Conformer(source)(batch)


def _dates_both(col: pa.Array) -> _DatedBoth:
    """Parsed dates and the text where it is not a date, for a field that is not required and
    for one that is ("长期" is kept too; a blank one, NULL, N/A, - …: is_blank, is missing, not
    malformed), from one parse."""
    parsed = parse_dates(col)
    null = pa.scalar(None, pa.string())
    text = clean_text(col)
    required = pc.and_not(pc.or_(parsed.invalid, parsed.open_ended), is_blank(col))
    return _DatedBoth(parsed.dates, pc.if_else(parsed.invalid, text, null), pc.if_else(required, text, null))


def _map_status(col: pa.Array, status_map: dict[str, str]) -> pa.Array:
    if not status_map:
        return col
    keys = pa.array(list(status_map), pa.string())
    values = pa.array(list(status_map.values()), pa.string())
    idx = pc.index_in(col, value_set=keys)
    mapped = pc.take(values, idx)
    return pc.coalesce(mapped, col)   # unmapped codes stay as the silo wrote them
