"""Reading dropped files as Arrow batches of strings: CSV (any declared or detected encoding),
XLSX (python-calamine) and JSON Lines. A file that cannot be read whole raises BadFile."""
from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
from charset_normalizer import from_bytes
from python_calamine import CalamineWorkbook

from connectors.base import as_text, batch_from_rows, string_schema

SAMPLE = 4 << 20          # bytes charset-normalizer looks at
CHUNK = 1 << 20


class BadFile(Exception):
    """The reason a file is rejected: it goes to rejected/ with this text beside it."""


def detect_encoding(path: Path) -> str:
    """utf-8-sig (BOM), utf-8 (strictly valid), else charset-normalizer's best guess.
    GB2312/GBK are read as GB18030, their superset (traditional characters included)."""
    with path.open("rb") as f:
        head = f.read(4)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        f.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            while chunk := f.read(CHUNK):
                decoder.decode(chunk)
        except UnicodeDecodeError:
            pass
        else:
            try:
                decoder.decode(b"", final=True)
                return "utf-8"
            except UnicodeDecodeError:
                raise BadFile("the file ends inside a UTF-8 character: it was cut short "
                              "(truncated); drop the whole file again") from None
        f.seek(0)
        sample = f.read(SAMPLE)
    best = from_bytes(sample).best()
    if best is None:
        raise BadFile("its encoding is not declared and could not be detected; declare "
                      "`encoding` (e.g. \"gb18030\") in the registration's connector section")
    enc = codecs.lookup(best.encoding).name
    return "gb18030" if enc in ("gb2312", "gbk", "hz") else enc


def check_decodes(path: Path, encoding: str) -> None:
    """The whole file decodes strictly: a declared encoding that is wrong, or a file cut
    inside a character, is refused before anything is read."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with path.open("rb") as f:
        try:
            while chunk := f.read(CHUNK):
                decoder.decode(chunk)
                offset += len(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            if offset + exc.start >= path.stat().st_size - 4:
                raise BadFile(f"the file ends inside a {encoding} character: it was cut short "
                              "(truncated); drop the whole file again") from None
            raise BadFile(f"byte {offset + exc.start} is not valid {encoding}; declare the file's "
                          "real encoding in the registration (or leave it out to detect it)") from None


def read_csv(path: Path, encoding: str, delimiter: str, batch_rows: int) -> tuple[list[str], Iterator[pa.RecordBatch]]:
    check_decodes(path, encoding)
    with path.open("r", encoding=encoding, newline="") as f:
        header = next(csv.reader(io.StringIO(f.readline()), delimiter=delimiter), None)
    if not header or not any(h.strip() for h in header):
        raise BadFile("it has no header row")
    if len(set(header)) != len(header):
        raise BadFile(f"its header repeats a column: {header}")

    def batches():
        schema = string_schema(header)
        try:
            reader = pcsv.open_csv(
                path,
                read_options=pcsv.ReadOptions(encoding=encoding, block_size=max(1 << 20, batch_rows * 256)),
                parse_options=pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
                convert_options=pcsv.ConvertOptions(column_types={h: pa.string() for h in header},
                                                    strings_can_be_null=False,
                                                    quoted_strings_can_be_null=False))
            for batch in reader:
                yield pa.RecordBatch.from_arrays(batch.columns, schema=schema)
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise BadFile(f"it is not well-formed CSV ({str(exc).splitlines()[0]}); a row "
                          "with too few fields usually means the file was cut short (truncated)") from None
    return header, batches()


def read_jsonl(path: Path, encoding: str, fields: tuple[str, ...], batch_rows: int):
    check_decodes(path, encoding)
    with path.open("r", encoding=encoding) as f:
        first = f.readline()
    try:
        columns = list(fields) or list(json.loads(first))
    except (ValueError, TypeError):
        raise BadFile("line 1 is not a JSON object") from None
    schema = string_schema(columns)

    def batches():
        rows = []
        with path.open("r", encoding=encoding) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    raise BadFile(f"line {n} is not valid JSON; a last line cut off means the "
                                  "file was truncated") from None
                if not isinstance(record, dict):
                    raise BadFile(f"line {n} is not a JSON object")
                missing = [c for c in columns if c not in record]
                if missing:
                    raise BadFile(f"line {n} has no field {missing[0]!r}")
                rows.append(tuple(as_text(record[c]) for c in columns))
                if len(rows) >= batch_rows:
                    yield batch_from_rows(rows, schema)
                    rows = []
        if rows:
            yield batch_from_rows(rows, schema)
    return columns, batches()


def read_xlsx(path: Path, sheet: str | int | None, batch_rows: int):
    try:
        wb = CalamineWorkbook.from_path(str(path))
        ws = wb.get_sheet_by_name(sheet) if isinstance(sheet, str) else wb.get_sheet_by_index(sheet or 0)
        rows_iter = iter(ws.iter_rows())
        header = [as_text(h) or "" for h in next(rows_iter, [])]
    except Exception as exc:   # calamine raises its own zip/xml errors
        raise BadFile(f"it is not a readable XLSX workbook ({type(exc).__name__}: {exc}); "
                      "a damaged zip usually means the file was cut short (truncated)") from None
    while header and header[-1] == "":
        header.pop()
    if not header:
        raise BadFile("its first sheet has no header row")
    schema = string_schema(header)

    def batches():
        rows = []
        for row in rows_iter:
            values = [as_text(v) if v != "" else "" for v in row[:len(header)]]
            if not any(values):
                continue
            rows.append(tuple(values + [""] * (len(header) - len(values))))
            if len(rows) >= batch_rows:
                yield batch_from_rows(rows, schema)
                rows = []
        if rows:
            yield batch_from_rows(rows, schema)
    return header, batches()
