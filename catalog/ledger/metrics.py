"""The exchange's state in Prometheus' text format (GET /metrics): read from the catalogue on
every scrape, so every API host serves the same figures. Airflow's own metrics (task
durations, scheduler health) come from Airflow's StatsD or OpenTelemetry exporter."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from catalog.ledger.monitoring import source_status

RUN_STATES = ("published", "unchanged", "failed", "held", "running")
FRESHNESS = ("fresh", "late", "stale")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _seconds(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


class ExchangeCollector(Collector):
    def __init__(self, ledger, at: datetime | None = None):
        self.ledger, self.at = ledger, at

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rows = source_status(self.ledger, self.at)
        g = {name: GaugeMetricFamily(f"exchange_{name}", doc, labels=labels) for name, doc, labels in (
            ("source_info", "来源登记 (a registered source): its dataset, department and connector",
             ["source", "dataset", "department", "connector"]),
            ("source_last_run_state", "最近一次运行的状态 (the latest run's state), 1 for the state it is in",
             ["source", "state"]),
            ("source_last_run_finished_timestamp_seconds", "最近一次运行结束时间 (when the latest run ended)",
             ["source"]),
            ("source_last_run_rows", "最近一次运行的行数 (rows of the latest run): extracted, accepted, quarantined",
             ["source", "kind"]),
            ("source_quarantine_backlog", "待处理的隔离记录 (quarantined rows awaiting the source)", ["source"]),
            ("dataset_freshness", "数据集时效 (a dataset's freshness), 1 for the state it is in",
             ["dataset", "state"]),
            ("dataset_last_refresh_timestamp_seconds", "数据集最近更新时间 (the dataset's last refresh)",
             ["dataset"]),
            ("dataset_due_timestamp_seconds", "数据集下次应更新时间 (when the dataset is due)", ["dataset"]))}
        datasets: dict[str, dict] = {}
        for r in rows:
            src = r["source"]
            g["source_info"].add_metric([src, r["dataset"] or "", r["department"] or "", r["connector"] or ""], 1)
            if r["result"]:
                for state in dict.fromkeys([*RUN_STATES, r["result"]]):
                    g["source_last_run_state"].add_metric([src, state], float(state == r["result"]))
            if (ended := _seconds(r["finished_at"])) is not None:
                g["source_last_run_finished_timestamp_seconds"].add_metric([src], ended)
            for kind in ("extracted", "accepted", "quarantined"):
                if r[kind] is not None:
                    g["source_last_run_rows"].add_metric([src, kind], r[kind])
            g["source_quarantine_backlog"].add_metric([src], r["backlog"] or 0)
            if r["dataset"]:
                datasets.setdefault(r["dataset"], r)
        for ds, r in sorted(datasets.items()):
            if r["freshness"]:
                for state in dict.fromkeys([*FRESHNESS, r["freshness"]]):
                    g["dataset_freshness"].add_metric([ds, state], float(state == r["freshness"]))
            for name, key in (("dataset_last_refresh_timestamp_seconds", "last_refresh"),
                              ("dataset_due_timestamp_seconds", "due_at")):
                if (t := _seconds(r[key])) is not None:
                    g[name].add_metric([ds], t)
        yield from g.values()


def exposition(ledger, at: datetime | None = None, *others: CollectorRegistry) -> bytes:
    """The catalogue's figures, then those of `others` (the API's request metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ExchangeCollector(ledger, at))
    return b"".join([generate_latest(registry), *(generate_latest(r) for r in others)])
