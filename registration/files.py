"""Registration files: one TOML file per source in settings.sources_dir.

`scan` reads a whole folder: a file that cannot be loaded is skipped and reported, never hiding
the others.
"""
from __future__ import annotations

import logging
import tomllib
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


def _id_of(path: Path) -> str | None:
    """The id a file claims, if it is a readable identifier (for reporting a broken file)."""
    try:
        value = tomllib.loads(path.read_text("utf-8")).get("id")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
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
    found = scan(directory)
    for p in found.problems:
        log.warning("registration file not loaded: %s", p.reason)
    return found.registrations


def get(source_id: str, directory: Path) -> Registration:
    found = scan(directory)
    if source_id in found.registrations:
        return found.registrations[source_id]
    for p in found.problems:
        if p.source == source_id:
            raise ConfigError(p.reason)
    raise UnknownName("source", source_id, found.registrations)
