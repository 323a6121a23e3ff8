"""The registrations in the catalogue, as stewards manage them: `exchange sources sync [DIR]`
loads a folder of registration files into the catalogue, `list` shows what every machine
reads, `remove ID` takes one out. `exchange register FILE` (exchange/registering.py) adds one
file after testing its silo; `store_file` adds one without that (the demo, tests).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import registration
from base.errors import ConfigError, ExchangeError
from base.settings import get_settings
from catalog import registrations
from exchange.catalogue import open_catalog
from exchange.listing import source_listing

STATES = ("added", "updated", "unchanged", "refused")


def _read(path: Path) -> tuple[str, registration.Registration]:
    """A file's text and its registration parsed from that very text."""
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read as UTF-8 ({exc})") from None
    return text, dataclasses.replace(registration.parse_text(text, str(path)), path=path)


def store_file(path: Path, by: str | None = None) -> str:
    """One registration file into the catalogue (checked as `sources sync` checks it): "added",
    "updated" or "unchanged"; ConfigError if it does not load."""
    path = Path(path)
    text, reg = _read(path)
    before = registrations.stored(get_settings().catalog_url, reg.id)
    if before and before[0]["sha256"] == registrations.digest(text):
        return "unchanged"
    open_catalog().register(source_listing(reg, toml=text), by=by)
    return "updated" if before else "added"


def sync(directory: Path | None = None, by: str | None = None) -> list[dict]:
    """Every *.toml in `directory` (default: the sources folder) into the catalogue, one row
    each: added, updated, unchanged or refused (with why). A file that does not load (or
    registers an id another file registers too) is refused without stopping the others.
    Registrations only in the catalogue are left as they are (`sources remove` takes one out)."""
    directory = Path(directory or get_settings().sources_dir)
    if not directory.is_dir():
        raise ConfigError(f"登记目录不存在 (no such folder): {directory}")
    found = registration.scan(directory)
    rows = [{"file": p.path, "source": p.source, "state": "refused", "reason": p.reason}
            for p in found.problems]
    for reg in found.registrations.values():
        try:
            state = store_file(reg.path, by)
        except ExchangeError as exc:
            rows.append({"file": str(reg.path), "source": reg.id, "state": "refused", "reason": str(exc)})
            continue
        rows.append({"file": str(reg.path), "source": reg.id, "state": state, "reason": None})
    return sorted(rows, key=lambda r: r["file"])


def listed() -> list[dict]:
    """Every registration in the catalogue: its source, dataset and DAG when it loads, else why
    not; when and by whom it was stored, and from which file."""
    url = get_settings().catalog_url
    rows = registrations.stored(url)
    scan = registration.scan_texts((r["source_id"], r["toml"], r["origin"]) for r in rows)
    why = {p.source: p.reason for p in scan.problems}
    out = []
    for r in rows:
        reg = scan.registrations.get(r["source_id"])
        out.append({"source": r["source_id"], "dataset": reg.dataset if reg else None,
                    "dag_id": reg.dag_id if reg else None, "state": "ok" if reg else "not loaded",
                    "reason": why.get(r["source_id"]), "registered_at": r["registered_at"],
                    "updated_at": r["updated_at"], "by": r["registered_by"], "origin": r["origin"],
                    "sha256": r["sha256"]})
    return out


def remove(source_id: str) -> dict:
    """Take a registration out of the catalogue: its DAG goes at Airflow's next parse on every
    machine; its dataset, versions and runs stay. Says whether this machine's sources folder
    still has a file registering it (a later `sources sync` would add it again)."""
    s = get_settings()
    gone = registrations.remove(s.catalog_url, source_id)
    folder = s.sources_dir
    left = [str(p) for p in sorted(folder.glob("*.toml")) if registration.id_in(_text(p)) == source_id] \
        if folder.is_dir() else []
    return {**gone, "still_in_folder": left}


def _text(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return ""
