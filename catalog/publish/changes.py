"""What a run changes in its dataset, counted (catalog/publish/log_version.py builds it).

A record that disappears from its authoritative source is not kept as valid: a new state with
status "withdrawn" is appended to the log (and it stays withdrawn while it stays gone).
A record still in the source whose rows were all quarantined is not gone: it is held, its
state unchanged, and shown as disputed while its quarantine entry is open.

    held_records(current, accepted, quarantined_keys) -> {licence number: record id}
        The records a run's quarantined rows hold back (the quarantine queue keeps them).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa

from base import staging

WITHDRAWN = "withdrawn"


@dataclass(frozen=True)
class Changes:
    new: int
    changed: int
    unchanged: int
    withdrawn: int            # withdrawn in this version (were not before)
    still_withdrawn: int      # carried, already withdrawn

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Carried:
    withdrawn: int            # records withdrawn in this version (were not before)
    held: int                 # records present in the pull whose rows were all quarantined


def held_records(current: dict[str, str], accepted: Path, quarantined: pa.Array) -> dict[str, str]:
    """licence number -> record id of the current records that this pull holds back: `current`
    maps the quarantined rows' licence numbers to the current records' ids; those no accepted
    row has are held."""
    if not current or len(quarantined) == 0:
        return {}
    taken = set(staging.read_table(accepted, ["licence_number"]).column(0).to_pylist())
    return {n: rid for n, rid in current.items() if n not in taken}
