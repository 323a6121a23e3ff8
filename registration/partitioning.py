"""A registration's [run] table: how a run splits its silo into partitions.

    [run]
    partitions = 4            # or: partition_rows = 250000 (one partition per so many rows)

Default: no split (one partition, the whole silo). The split follows the connector's kind:
SQL key ranges over `connector.key`, HTTP page ranges (`connector.total` names the page's
record count), file drops whole files. An incremental source (a watermark, or a drop in
delta mode) is pulled whole, so the two are refused together.
"""
from __future__ import annotations

from base import tomlfile
from base.errors import ConfigError

KEYS = ("partitions", "partition_rows")
LIMITS = {"partitions": (1, 256), "partition_rows": (1, 100_000_000)}
MAX_PARTS = LIMITS["partitions"][1]


def parse_run(raw: dict, connector: dict, where: str) -> dict:
    """The [run] table checked against the connector it splits; {} when absent."""
    tomlfile.typed(raw, "table", "run", where)
    tomlfile.check_keys(raw, where, KEYS, table="run")
    for key, (lo, hi) in LIMITS.items():
        if key in raw:
            tomlfile.between(raw[key], lo, hi, f"run.{key}", where)
    if len(set(raw) & set(KEYS)) > 1:
        raise ConfigError(f"{where}: run.partitions and run.partition_rows: give one of them, not both")
    if not raw or raw.get("partitions") == 1:
        return dict(raw)
    key = "run.partitions" if "partitions" in raw else "run.partition_rows"
    kind = connector.get("kind")
    if connector.get("watermark") or connector.get("mode") == "delta":
        raise ConfigError(f"{where}: {key}: an incremental source (connector.watermark, or a drop in "
                          "mode = \"delta\") is pulled whole and cannot be split into partitions; "
                          "remove the [run] table or the incremental setting")
    if kind == "sql" and not connector.get("key"):
        raise ConfigError(f"{where}: {key}: a split sql silo needs connector.key, an orderable "
                          "column (the primary key) whose ranges make the partitions")
    if kind == "http":
        if connector.get("pagination", "page") == "cursor":
            raise ConfigError(f"{where}: {key}: an http silo with cursor pagination cannot be split "
                              "(each page needs the one before); use page or offset pagination")
        if not connector.get("total"):
            raise ConfigError(f"{where}: {key}: a split http silo needs connector.total, the field "
                              "of a page that gives the number of records (e.g. total = \"total\")")
    if kind == "files" and "partition_rows" in raw:
        raise ConfigError(f"{where}: run.partition_rows: a file drop is split by file; give "
                          "run.partitions (at most that many partitions of whole files)")
    return dict(raw)
