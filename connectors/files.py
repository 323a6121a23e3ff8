"""File drops: CSV (UTF-8, UTF-8 with BOM, GBK, GB18030: declared or detected), XLSX and
JSON Lines, taken from a drop folder.

Each file is taken once: its SHA-256 goes into the catalogue's ledger when the version it fed
is published, and only then is it moved to processed/ (connectors/state.py commits). A file
that cannot be read whole is moved to rejected/ at once, with `<name>.reason.txt` beside it,
and the run fails publishing nothing; a re-run goes on without it. An optional `<name>.sha256`
sidecar (sha256sum format) is checked: a file cut short does not match.
"""
from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from base import clock
from base.errors import DataError
from connectors import readers
from registration.connector import FORMATS, FileDropSettings, silo_path

SIDECARS = (".sha256", ".reason.txt", ".part", ".tmp")


@dataclass(frozen=True)
class Claim:
    name: str
    sha256: str
    path: str


class FileDropConnector:
    def __init__(self, settings: FileDropSettings, source_id: str):
        self.settings, self.source_id = settings, source_id
        self.drop = silo_path(settings.path, "connector.path", f"source {source_id}")
        self.taken: set[str] = set()        # checksums already in the ledger (set by state)
        self.claims: list[Claim] = []
        self.move_bad = True                # False: a preview (exchange register) moves nothing

    def pending(self) -> list[Path]:
        if not self.drop.is_dir():
            raise DataError(f"the drop folder {self.drop} does not exist; check connector.path",
                            source=self.source_id, rule="files: drop folder present")
        part = self.settings.part
        if part:            # one partition of a split run: exactly the files planned for it
            gone = [n for n in part["files"] if not (self.drop / n).is_file()]
            if gone:
                raise DataError(f"file {gone[0]} planned for partition {part['index'] + 1} of {part['of']} "
                                f"is no longer in the drop folder {self.drop}; re-run the whole run",
                                source=self.source_id, rule="files: planned files present")
            return [self.drop / n for n in part["files"]]
        now = time.time()
        return sorted(p for p in self.drop.glob(self.settings.pattern)
                      if p.is_file() and not p.name.startswith(".") and not p.name.endswith(SIDECARS)
                      and now - p.stat().st_mtime >= self.settings.settle_seconds)

    def _open(self, path: Path):
        s = self.settings
        fmt = s.format or FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise readers.BadFile(f"its extension {path.suffix!r} is not one of {sorted(FORMATS)}")
        if fmt == "xlsx":
            return readers.read_xlsx(path, s.sheet, s.batch_rows)
        encoding = s.encoding or readers.detect_encoding(path)
        if fmt == "jsonl":
            return readers.read_jsonl(path, encoding, s.fields, s.batch_rows)
        return readers.read_csv(path, encoding, s.delimiter, s.batch_rows)

    def columns(self) -> list[str]:
        """The header of the first new file (all must agree), else the declared fields."""
        for path in self.pending():
            try:
                return list(self._open(path)[0])
            except readers.BadFile as bad:
                raise self._reject(path, bad) from None
        return list(self.settings.fields)

    def _reject(self, path: Path, bad: readers.BadFile) -> DataError:
        if not self.move_bad:
            return DataError(f"file {path.name} in {self.drop} cannot be read: {bad}",
                             source=self.source_id, rule="files: readable whole")
        reject(path, str(bad))
        return DataError(f"file {path.name} was rejected: {bad}; it was moved to "
                         f"{self.drop / 'rejected'} with the reason beside it, nothing was "
                         "published: re-run to go on without it", source=self.source_id,
                         rule="files: readable whole")

    def batches(self) -> Iterator[pa.RecordBatch]:
        self.claims = []
        columns = None
        for path in self.pending():
            digest = sha256_of(path)
            try:
                if digest in self.taken:
                    raise readers.BadFile("the same content was already taken (its SHA-256 is in the ledger)")
                _check_sidecar(path, digest)
                header, batches = self._open(path)
                missing = [f for f in self.settings.fields if f not in header]
                if missing:
                    raise readers.BadFile(f"it has no column {missing[0]!r} (header: {header})")
                if columns is not None and header != columns:
                    raise readers.BadFile(f"its columns {header} differ from the other new files' {columns}")
                columns = header
                yield from batches
            except readers.BadFile as bad:
                raise self._reject(path, bad) from None
            self.claims.append(Claim(path.name, digest, str(path)))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _check_sidecar(path: Path, digest: str) -> None:
    side = path.with_name(path.name + ".sha256")
    if side.is_file():
        want = side.read_text("ascii", errors="replace").split()[0].lower() if side.stat().st_size else ""
        if want != digest:
            raise readers.BadFile(f"its SHA-256 {digest[:12]}… does not match {side.name} "
                                  f"({want[:12]}…): the file was cut short or altered")


def _move(path: Path, folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    if target.exists():
        stamp = clock.now().strftime("%Y%m%dT%H%M%S%f")
        target = folder / f"{path.stem}.{stamp}{path.suffix}"
    shutil.move(path, target)
    side = path.with_name(path.name + ".sha256")
    if side.exists():
        shutil.move(side, target.with_name(target.name + ".sha256"))
    return target


def reject(path: Path, reason: str) -> Path:
    target = _move(path, path.parent / "rejected")
    target.with_name(target.name + ".reason.txt").write_text(
        f"{clock.now().isoformat()} rejected {path.name}: {reason}\n", encoding="utf-8")
    return target


def mark_processed(claim: Claim) -> None:
    """After the version the file fed is published (idempotent)."""
    path = Path(claim.path)
    if path.exists():
        _move(path, path.parent / "processed")
