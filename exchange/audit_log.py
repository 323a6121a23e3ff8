"""The access audit log: its hash chain checked against signed checkpoints someone holds
(`exchange audit-verify`), and a holder's accesses a page at a time (`exchange access-report`)."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from base.errors import InvalidRequest
from base.settings import get_settings
from catalog.serving.audit import holder_report
from catalog.serving.audit_checkpoints import read_held, verify_log
from catalog.serving.consumer import holder_key
from exchange.catalogue import open_catalog


def read_file(path: str | Path, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"cannot read the {what} file {path}: {getattr(exc, 'strerror', None) or exc}") from None


def held_checkpoints(paths: list[str]) -> list[str]:
    """The checkpoints someone holds, from their files."""
    return [read_held(read_file(path, "checkpoint")) for path in paths]


def published_jwks(path: str | None) -> dict:
    """The JWKS given, else the one the catalogue publishes, else the key directory's
    jwks.json (no keys if none is published)."""
    if not path and (material := open_catalog().key_material()) is not None:
        return json.loads(material[0])
    jwks_path = path or get_settings().jwks_path
    return json.loads(read_file(jwks_path, "JWKS")) if path or Path(jwks_path).exists() else {"keys": []}


def verify(jwks: dict, held: list[str], progress: Callable[[int, int], None] | None = None) -> dict:
    """The chain from its first entry, each signed checkpoint, and that it extends `held`."""
    return verify_log(open_catalog().engine, jwks, held, progress=progress)


def holder_accesses(holder_id: str, limit: int, before: int | None) -> tuple[str, list[dict], bool]:
    """(the holder's key, a page of accesses to its records newest first, whether more remain)."""
    key = holder_key(holder_id)
    if not 1 <= limit <= 10_000:
        raise InvalidRequest(f"--limit {limit}: give 1 to 10000 entries a page")
    rows, more = holder_report(open_catalog().engine, key, limit, before)
    return key, rows, more
