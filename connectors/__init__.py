"""Pulling from silos. `build` makes the connector a registration asks for.

kinds: sql (SQLAlchemy; ADBC bulk reads), http (requests), files (a drop folder). The settings
of each kind (registration/connector.py) are checked without importing a driver.
`since` is the committed watermark of an incremental source (see connectors/state.py).
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from registration.connector import KINDS, settings_for

if TYPE_CHECKING:
    from connectors.base import Connector


def _connector_class(kind: str):
    if kind == "sql":
        from connectors.sql import SqlConnector  # lazy: drivers only when pulling
        return SqlConnector
    if kind == "http":
        from connectors.http import HttpConnector  # lazy: as above
        return HttpConnector
    from connectors.files import FileDropConnector  # lazy: as above
    return FileDropConnector


def build(cfg: dict, source_id: str, since: str | None = None, where: str | None = None,
          part: dict | None = None) -> Connector:
    """`part`: one partition of a split run (connectors/partitions.py); None or a whole-silo
    partition pulls everything."""
    settings = settings_for(cfg, where or f"source {source_id}")
    if since is not None and getattr(settings, "watermark", None):
        settings = dataclasses.replace(settings, since=since)
    if part and part.get("of", 1) > 1:
        settings = dataclasses.replace(settings, part=part)
    return _connector_class(cfg["kind"])(settings, source_id)


__all__ = ["KINDS", "build", "settings_for"]
