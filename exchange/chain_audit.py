"""`exchange audit-chain DATASET`: every published version of a dataset checked against the
public key material, to the first break."""
from __future__ import annotations

import json
from collections.abc import Callable

from base.errors import NotFound
from base.settings import get_settings
from catalog.publish.chain import CHECKS, audit_chain, catalogue_entries
from exchange.catalogue import open_catalog
from trust.verify import KEY_STATUS_FILE, read_key_status

CHECK_NAMES = [n for _, n in CHECKS]


def published_versions(dataset: str) -> tuple[list, dict, str | None]:
    """(the dataset's catalogue entries, the published JWKS, the key status document): the
    catalogue's key material, else (none published there yet) the key directory's files."""
    s = get_settings()
    cat = open_catalog()
    entries = catalogue_entries(cat.engine, cat.store, dataset)
    if not entries:
        raise NotFound(f"dataset {dataset!r} has no published versions; see `exchange datasets`")
    material = cat.key_material()             # the catalogue's, as every API host serves it
    if material is not None:
        return entries, json.loads(material[0]), material[1]
    jwks = json.loads(s.jwks_path.read_text(encoding="utf-8")) if s.jwks_path.exists() else {"keys": []}
    return entries, jwks, read_key_status(s.jwks_path.with_name(KEY_STATUS_FILE))


def check(dataset: str, entries: list, jwks: dict, key_status: str | None,
          progress: Callable[[], None] | None = None) -> dict:
    """The report: ok, versions and records checked, the first break (None when intact)."""
    report = audit_chain(dataset, entries, jwks, key_status, progress=progress)
    return {"dataset": dataset, "ok": report.ok, "versions": len(entries),
            "versions_checked": report.versions_checked, "records_checked": report.records_checked,
            "first_break": report.first_break, "checks": CHECK_NAMES}
