"""Departments' file exports for the demo and tests: CSV in a chosen encoding, XLSX."""
from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import xlsxwriter


def write_csv(table: pa.Table, path, encoding: str = "utf-8") -> Path:
    """CSV as a department exports it; encoding e.g. gbk, gb18030, utf-8-sig."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.part")
    with tmp.open("w", encoding=encoding, newline="") as f:
        w = csv.writer(f)
        w.writerow(table.column_names)
        for batch in table.to_batches(20_000):
            cols = [c.to_pylist() for c in batch.columns]
            w.writerows(zip(*cols))
    tmp.replace(path)
    return path


def write_xlsx(table: pa.Table, path, created: datetime | None = None) -> Path:
    """An Excel export: numbers stay numbers (as Excel keeps them), text stays text. With
    `created` (the document's creation time) the same table gives the same bytes."""

    path = Path(path)
    tmp = path.with_name(f".{path.name}.part")
    wb = xlsxwriter.Workbook(str(tmp), {"constant_memory": True, "strings_to_numbers": False})
    if created is not None:
        wb.set_properties({"created": created})
    ws = wb.add_worksheet("证照")
    ws.write_row(0, 0, table.column_names)
    r = 1
    for batch in table.to_batches(20_000):
        for row in zip(*(c.to_pylist() for c in batch.columns)):
            ws.write_row(r, 0, row)
            r += 1
    wb.close()
    tmp.replace(path)
    return path
