"""The expectation suite of a certificate type, derived from its one definition."""
from __future__ import annotations

from datetime import date

from schemas.conform import raw_name
from schemas.types import CertificateType


def build_suite(ctype: CertificateType, today: date):
    """Row-level expectations. Uniqueness is checked over the whole version separately."""
    import great_expectations as gx

    from quality import expectations as custom

    suite = gx.ExpectationSuite(name=f"{ctype.name}.v{ctype.version}")
    E = gx.expectations
    for f in ctype.fields:
        if f.type == "date":
            suite.add_expectation(custom.ExpectColumnValuesToBeParsableDates(column=raw_name(f.name)))
        if f.required:
            suite.add_expectation(E.ExpectColumnValuesToNotBeNull(column=f.name))
        if f.check == "uscc":
            suite.add_expectation(custom.ExpectColumnValuesToBeValidUscc(column=f.name))
        if f.check == "ric":
            suite.add_expectation(custom.ExpectColumnValuesToBeValidRic(column=f.name))
        if f.in_set:
            suite.add_expectation(E.ExpectColumnValuesToBeInSet(column=f.name, value_set=list(f.in_set)))
        if f.not_future:
            suite.add_expectation(custom.ExpectColumnValuesToNotBeInTheFuture(
                column=f.name, today=today.isoformat()))
    for r in ctype.rules:
        if r.kind == "ordered":
            suite.add_expectation(E.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=r.then, column_B=r.first, or_equal=True,
                ignore_row_if="either_value_is_missing"))
    return suite


def unique_fields(ctype: CertificateType) -> list[str]:
    return [f.name for f in ctype.fields if f.unique]


def suite_columns(suite) -> list[str]:
    """The columns a suite reads: GX is handed only these."""
    cols = []
    for e in suite.expectations:
        for key in ("column", "column_A", "column_B"):
            c = getattr(e, key, None)
            if c and c not in cols:
                cols.append(c)
    return cols
