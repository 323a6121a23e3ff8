"""Pulling from silos. `build` makes the connector a registration asks for."""
from __future__ import annotations

from connectors.base import Connector
from exchange.errors import ConfigError, UnknownName


def build(cfg: dict, source_id: str) -> Connector:
    from connectors.sql import SqlConnector, SqlSettings

    kinds = {"sql": lambda: SqlConnector(SqlSettings.from_registration(cfg), source_id)}
    kind = cfg.get("kind")
    if kind is None:
        raise ConfigError(f"source {source_id}: connector.kind is missing; known: {sorted(kinds)}")
    if kind not in kinds:
        raise UnknownName("connector kind", kind, kinds)
    return kinds[kind]()
