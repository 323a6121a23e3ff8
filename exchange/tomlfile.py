"""Declarative files (types, items, registrations): TOML read with its keys checked."""
from __future__ import annotations

import tomllib
from pathlib import Path

from exchange.errors import ConfigError


def load(path: Path, where: str, known: set[str], required: set[str] = frozenset()) -> dict:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    return check_keys(raw, where, known, required)


def check_keys(raw: dict, where: str, known: set[str], required: set[str] = frozenset()) -> dict:
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    missing = set(required) - set(raw)
    if missing:
        raise ConfigError(f"{where}: missing keys {sorted(missing)}")
    return raw
