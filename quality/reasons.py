"""Quarantine reasons in plain words: what is wrong with the row and what the source should fix,
with the expectation's technical name beside, e.g. `持证主体代码不是有效的统一社会信用代码（校验位
或字符错误），请源部门核对并更正该代码 (expect_column_values_to_be_valid_uscc: holder_code)`.

A reason is kept and sent to programs as its label, `expectation(column,…)` (quality/validate.py
`label`); this turns a label into words for people. The words are in the message catalogue
(base/i18n.py, keys `reason.<expectation>`); field names come from the certificate type."""
from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from base import i18n
from schemas.types import CertificateType

LABEL = re.compile(r"(?P<expectation>[a-z_]+)\((?P<columns>[^()]*)\)\Z")
_SEP = "\x1f"          # never in a label


def label_lists(column: pa.Array) -> list[list[str] | None]:
    """A list<string> column of labels, row by row (read so it is slow): each distinct list is
    read once and the rows with it share it (a caller copies what it changes); null: None."""
    coded = pc.binary_join(column, _SEP).dictionary_encode()
    distinct = [s.split(_SEP) if s else [] for s in coded.dictionary.to_pylist()]
    return [None if i is None else distinct[i] for i in coded.indices.to_pylist()]


def same_lists(a: pa.Array, b: pa.Array) -> pa.Array:
    """Per row: do the two list<string> columns hold the same labels in the same order (null
    where either is null)."""
    return pc.equal(pc.binary_join(a, _SEP), pc.binary_join(b, _SEP))


def list_counts(column: pa.Array) -> list[tuple[list[str], int]]:
    """The distinct non-null lists of a list<string> column of labels, each with its rows."""
    counted = pc.value_counts(pc.binary_join(column, _SEP))
    return [(s.split(_SEP) if s else [], n) for s, n in
            zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist()) if s is not None]


def parse(label: str) -> tuple[str, list[str]]:
    """A label's expectation and columns; a label of another form is its own expectation."""
    m = LABEL.match(label.strip())
    if not m:
        return label, []
    return m["expectation"], [c for c in m["columns"].split(",") if c]


def _title(column: str, ctype: CertificateType | None, lang: str) -> str:
    if lang == "en":
        return column
    field = next((f for f in ctype.fields if f.name == column), None) if ctype else None
    title = (field.title if field else "") or ""
    return title.split(" (")[0].strip() or column


def explain(label: str, ctype: CertificateType | None = None, lang: str = i18n.DEFAULT_LANG) -> str:
    """The reason in words, the technical name beside: `… (expectation: column, column)`."""
    expectation, columns = parse(label)
    titles = [_title(c, ctype, lang) for c in columns] or [i18n.t("col.field", lang)]
    key = f"reason.{expectation}" if f"reason.{expectation}" in i18n.MESSAGES else "reason.other"
    if expectation == "expect_column_pair_values_a_to_be_greater_than_b" and len(titles) == 2:
        text = i18n.t(key, lang, field=titles[0], other=titles[1])
    else:
        text = i18n.t(key, lang, field=i18n.t("reason.field_sep", lang).join(titles), other="")
    technical = f"{expectation}: {', '.join(columns)}" if columns else expectation
    return f"{text} ({technical})"


def described(label: str, ctype: CertificateType | None = None) -> dict:
    """For JSON: the machine-readable label and expectation, its columns and the Chinese text."""
    expectation, columns = parse(label)
    return {"reason": label, "expectation": expectation, "columns": columns,
            "text": explain(label, ctype)}
