"""Pulling from silos. `build` makes the connector a registration asks for.

kinds: sql (SQLAlchemy; ADBC bulk reads), http (requests), files (a drop folder).
`since` is the committed watermark of an incremental source (see connectors/state.py).
"""
from __future__ import annotations

import dataclasses

from connectors.base import Connector
from exchange.errors import ConfigError, UnknownName


def _sql(cfg, source_id):
    from connectors.sql import SqlConnector, SqlSettings
    return SqlConnector, SqlSettings.from_registration(cfg)


def _http(cfg, source_id):
    from connectors.http import HttpConnector, HttpSettings
    return HttpConnector, HttpSettings.from_registration(cfg)


def _files(cfg, source_id):
    from connectors.files import FileDropConnector, FileDropSettings
    return FileDropConnector, FileDropSettings.from_registration(cfg)


KINDS = {"sql": _sql, "http": _http, "files": _files}


def build(cfg: dict, source_id: str, since: str | None = None) -> Connector:
    kind = cfg.get("kind")
    if kind is None:
        raise ConfigError(f"source {source_id}: connector.kind is missing; known: {sorted(KINDS)}")
    if kind not in KINDS:
        raise UnknownName("connector kind", kind, KINDS)
    cls, settings = KINDS[kind](cfg, source_id)
    if since is not None and getattr(settings, "watermark", None):
        settings = dataclasses.replace(settings, since=since)
    return cls(settings, source_id)
