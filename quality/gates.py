"""Run-level gates: a version's size against the previous one, and schema drift in the silo."""
from __future__ import annotations

import shlex
from dataclasses import dataclass

from base import staging
from base.errors import DataError
from schemas.conform import ROW
from schemas.normalize import is_blank


@dataclass(frozen=True)
class SizeGate:
    previous: int | None
    accepted: int
    limit: float                      # largest relative change published unattended

    @property
    def change(self) -> float | None:
        if not self.previous:
            return None
        return (self.accepted - self.previous) / self.previous

    @property
    def holds(self) -> bool:
        return self.change is not None and abs(self.change) > self.limit

    def reason(self, source: str, run_key: str) -> str:
        """What held the run and the exact command that lets it publish."""
        return (f"size gate: {self.accepted} records against {self.previous} in the current "
                f"version ({self.change:+.1%}, limit ±{self.limit:.0%}); a broken silo export "
                "may be the cause. Check the silo, then approve with "
                f"`exchange approve {shlex.quote(source)} {shlex.quote(run_key)} --by NAME --note TEXT` "
                "or re-run")

    def as_dict(self) -> dict:
        return {"previous": self.previous, "accepted": self.accepted, "change": self.change,
                "limit": self.limit, "held": self.holds}


class SchemaDrift(DataError):
    """The silo changed under a mapping: a mapped column is gone or has a new type."""


@dataclass(frozen=True)
class Drift:
    unmapped: list[str]               # silo columns the mapping does not use
    new: list[str]                    # of those, the ones the previous run did not have
    retyped: dict[str, tuple[str, str]]   # mapped column -> (before, now)


def drift(previous: dict[str, str] | None, current: dict[str, str], mapped: set[str]) -> Drift:
    """Compare the silo's columns (name -> Arrow type) with the previous run's.
    A type that was or is `null` (a column with no values yet) is not a change."""
    unmapped = [c for c in current if c not in mapped and not c.startswith("_")]
    new = [c for c in unmapped if previous is not None and c not in previous]
    retyped = {c: (previous[c], t) for c, t in current.items()
               if previous and c in mapped and c in previous and previous[c] != t
               and "null" not in (previous[c], t)}
    return Drift(unmapped, new, retyped)


def refuse_retyped(d: Drift, source: str) -> None:
    if d.retyped:
        col, (was, now) = next(iter(d.retyped.items()))
        raise SchemaDrift(f"the silo's mapped column {col!r} changed type from {was} to {now}"
                          f"{f' (and {len(d.retyped) - 1} more)' if len(d.retyped) > 1 else ''}; "
                          "fix the silo export or the registration's mapping, then re-run",
                          source=source, rule="schema drift: mapped column type")


def refuse_blank_licence_numbers(accepted, source: str, type_name: str) -> None:
    """A row without its licence number is never published, whatever a steward left in the
    suite: the accepted rows are checked once more before they are signed."""
    if "licence_number" not in staging.read_schema(accepted).names:
        return
    table = staging.read_table(accepted, [ROW, "licence_number"])
    blank = is_blank(table.column("licence_number"))
    if blank.true_count:
        row = table.column(ROW).filter(blank)[0].as_py()
        raise DataError(f"{blank.true_count} accepted rows have a blank licence number (first: silo row "
                        f"{row}); quality/suites/{type_name}.json must keep "
                        "expect_column_values_to_not_be_null and "
                        "expect_column_values_to_not_be_blank_when_normalised on licence_number "
                        "(`python -m quality.suites` writes them); nothing was published",
                        source=source, row=row, rule="licence number present")
