"""An alert: what went wrong where, with its links, its one-line summary and its payload.
Messages are redacted (URL credentials, known secrets) before they go anywhere."""
from __future__ import annotations

import logging
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from urllib.parse import quote

from base import clock
from base.errors import UnknownName

log = logging.getLogger("exchange.alerts")

KINDS = {"failed": "run failed", "late_run": "run overran its deadline", "late": "dataset late",
         "stale": "dataset stale", "recovered": "dataset fresh again",
         "held": "运行待批准 (run held by a gate)",
         "objection_overdue": "数据异议逾期未处理 (objection overdue)",
         "notice_dead": "变更通知投递失败 (change notice dead-lettered)",
         "peer_refused": "跨区域同步被拒 (peer refused)",
         "peer_failed": "跨区域同步失败 (peer unreachable)"}
SECRET_ENV = ("EXCHANGE_KEY_PASSPHRASE", "AIRFLOW_VAR_EXCHANGE_KEY_PASSPHRASE", "EXCHANGE_SMTP_PASSWORD")
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/\s@:]+(:[^/\s@]*)?@", re.I)


def redact(text: str) -> str:
    """No secrets in messages: URL credentials and known secret values are masked."""
    text = _USERINFO.sub(r"\1***@", text or "")
    for name in SECRET_ENV:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


@dataclass(frozen=True)
class Alert:
    kind: str                      # one of KINDS
    dataset: str | None
    source: str | None = None
    dag_id: str | None = None
    run_id: str | None = None      # Airflow's run id
    task: str | None = None        # the failed task
    state: str | None = None       # the run's state, or the dataset's freshness state
    freshness: str | None = None
    message: str = ""
    at: datetime = field(default_factory=clock.now)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise UnknownName("alert kind", self.kind, KINDS)
        object.__setattr__(self, "message", redact(self.message))

    def links(self, settings) -> dict:
        out = {}
        if self.dag_id and self.run_id:
            out["airflow"] = f"{settings.airflow_url}/dags/{self.dag_id}/runs/{quote(self.run_id, safe='')}"
        elif self.dag_id:
            out["airflow"] = f"{settings.airflow_url}/dags/{self.dag_id}"
        if self.dataset:
            out["dashboard"] = f"{settings.dashboard_url}/dashboard/datasets/{quote(self.dataset, safe='')}"
        return out

    def summary(self) -> str:
        what = " ".join(p for p in (self.dataset, f"({self.source})" if self.source else "") if p)
        where = f" in task {self.task}" if self.task else ""
        return f"[exchange] {KINDS[self.kind]}: {what or self.dag_id}{where}: {self.message}"

    def payload(self, settings) -> dict:
        d = asdict(self)
        d["at"] = self.at.isoformat()
        d["title"] = KINDS[self.kind]
        d["text"] = self.summary()
        d["links"] = self.links(settings)
        return d
