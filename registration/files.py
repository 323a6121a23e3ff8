"""Registration files: one TOML file per source, as stewards keep them (settings.sources_dir),
and the same TOML text as the catalogue keeps it (catalog/registrations.py), which is what every
scheduler, DAG processor and worker reads.

`scan` reads a whole folder and `scan_texts` the catalogue's copies: one that cannot be loaded
is skipped and reported, never hiding the others.
"""
from __future__ import annotations

import logging
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from base import tomlfile
from base.errors import ConfigError, UnknownName
from registration.model import Registration
from registration.parse import parse
from registration.rules import ID_RE, TOP_KEYS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """A registration file that could not be loaded, and why (one line)."""
    path: str
    source: str | None          # its id, when it has a readable one
    reason: str


@dataclass(frozen=True)
class Scan:
    registrations: dict[str, Registration]
    problems: list[Problem]


def load(path: Path) -> Registration:
    raw = tomlfile.load(path, str(path), TOP_KEYS)
    return Registration(**{**parse(raw, str(path)).__dict__, "path": path})


def parse_text(text: str, where: str, origin: str | None = None) -> Registration:
    """A registration from its TOML text (the catalogue's copy); ConfigError as for a file."""
    raw = tomlfile.loads(text, where, TOP_KEYS)
    return Registration(**{**parse(raw, where).__dict__, "origin": origin})


def stored_where(source_id: str, origin: str | None) -> str:
    """How a message names a registration kept in the catalogue."""
    return f"registration {source_id} in the catalogue" + (f" (from {origin})" if origin else "")


def scan_texts(stored: Iterable[tuple[str, str, str | None]]) -> Scan:
    """The catalogue's registrations, (source id, TOML text, origin) each: those that parse, and
    those that no longer do (e.g. after an upgrade of the exchange) with the reason."""
    regs, problems = {}, []
    for source_id, text, origin in stored:
        where = stored_where(source_id, origin)
        try:
            reg = parse_text(text, where, origin)
        except ConfigError as exc:
            problems.append(Problem(origin or where, source_id, tomlfile.one_line(str(exc))))
            continue
        if reg.id != source_id:
            problems.append(Problem(origin or where, source_id, f"{where}: its text registers {reg.id!r}, "
                                    f"not {source_id!r}; register the file again"))
            continue
        regs[source_id] = reg
    return Scan(regs, problems)


def _id_of(path: Path) -> str | None:
    """The id a file claims, if it is a readable identifier (for reporting a broken file)."""
    try:
        return id_in(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError):
        return None


def id_in(text: str) -> str | None:
    """The id TOML text claims, if it is a readable identifier (for reporting a broken one)."""
    try:
        value = tomllib.loads(text).get("id")
    except tomllib.TOMLDecodeError:
        return None
    return value if isinstance(value, str) and ID_RE.fullmatch(value) else None


def scan(directory: Path) -> Scan:
    """Every registration file in `directory`: those that load, and those that do not with the
    reason (a file of an id registered twice is refused with its twin)."""
    loaded: dict[str, list[Registration]] = {}
    problems: list[Problem] = []
    for path in sorted(Path(directory).glob("*.toml")) if Path(directory).is_dir() else ():
        try:
            reg = load(path)
        except ConfigError as exc:
            problems.append(Problem(str(path), _id_of(path), tomlfile.one_line(str(exc))))
            continue
        loaded.setdefault(reg.id, []).append(reg)
    regs = {}
    for source_id, found in loaded.items():
        if len(found) == 1:
            regs[source_id] = found[0]
            continue
        files = ", ".join(str(r.path) for r in found)
        problems += [Problem(str(r.path), source_id, f"{r.path}: source id {source_id!r} is "
                             f"registered twice ({files}); remove one of them") for r in found]
    problems.sort(key=lambda p: p.path)
    return Scan(regs, problems)


def load_all(directory: Path) -> dict[str, Registration]:
    """The registrations that load; the others are skipped and logged (see `scan`)."""
    return loaded(scan(directory), "registration file")


def loaded(found: Scan, what: str = "registration") -> dict[str, Registration]:
    """A scan's registrations; its problems logged ("<what> not loaded: <reason>")."""
    for p in found.problems:
        log.warning("%s not loaded: %s", what, p.reason)
    return found.registrations


def get(source_id: str, directory: Path) -> Registration:
    return pick(scan(directory), source_id)


def pick(found: Scan, source_id: str) -> Registration:
    """A scan's registration of `source_id`; ConfigError with why if it did not load,
    UnknownName if there is none."""
    if source_id in found.registrations:
        return found.registrations[source_id]
    for p in found.problems:
        if p.source == source_id:
            raise ConfigError(p.reason)
    raise UnknownName("source", source_id, found.registrations)
