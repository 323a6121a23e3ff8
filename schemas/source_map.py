"""How one source's columns map onto its certificate type: what conforming needs of a registration."""
from __future__ import annotations

from dataclasses import dataclass, field

from schemas.types import CertificateType


@dataclass(frozen=True)
class SourceMap:
    source: str                                         # the source id (named in errors)
    ctype: CertificateType
    mapping: dict[str, str]                             # field -> silo column
    constants: dict[str, str] = field(default_factory=dict)
    status_map: dict[str, str] = field(default_factory=dict)   # silo code -> canonical status
