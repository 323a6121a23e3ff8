"""A source's registration, as read from its file or from the catalogue's copy of it
(registration/parse.py, registration/files.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from schemas.source_map import SourceMap
from schemas.types import CertificateType, get_type


@dataclass(frozen=True)
class Registration:
    id: str
    department: str
    certificate_type: str
    connector: dict
    mapping: dict[str, str]
    dataset: str = ""
    department_name: str = ""
    title: str = ""
    sharing: str = "conditional"
    update_cycle: str = "daily"
    schedule: str | None = None
    steward: str | None = None
    description: str = ""
    constants: dict[str, str] = field(default_factory=dict)
    status_map: dict[str, str] = field(default_factory=dict)
    checks: tuple[dict, ...] = ()           # a source's own expectations (registration/checks.py)
    gates: dict = field(default_factory=lambda: {"size_change": 0.30})
    run: dict = field(default_factory=dict)  # [run]: partitions / partition_rows (registration/partitioning.py)
    path: Path | None = None                # the file it was loaded from
    origin: str | None = None               # kept in the catalogue: the file it was stored from

    @property
    def ctype(self) -> CertificateType:
        return get_type(self.certificate_type)

    @property
    def dag_id(self) -> str:
        return f"source__{self.id}"

    @property
    def source_map(self) -> SourceMap:
        """What conforming its batches needs (schemas/conform.py)."""
        return SourceMap(self.id, self.ctype, self.mapping, self.constants, self.status_map)

    @property
    def partitioned(self) -> bool:
        """Whether a run splits the silo (more than one partition asked for)."""
        return self.run.get("partitions", 1) > 1 or "partition_rows" in self.run

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("path", "origin")}

    @property
    def source_file(self) -> str | None:
        """Where it was read from, for messages: its file, or the file the catalogue's copy
        was stored from."""
        return str(self.path) if self.path else self.origin
