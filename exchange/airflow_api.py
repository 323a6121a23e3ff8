"""Airflow's REST API (Airflow 3, /api/v2) for `exchange run` and `exchange approve`: trigger a
source's DAG run, clear a held run's publish task, follow a run to its end. Airflow keeps the one
run history; this module only asks it.

Credentials (Settings): a JWT in EXCHANGE_AIRFLOW_TOKEN, else EXCHANGE_AIRFLOW_USERNAME and
EXCHANGE_AIRFLOW_PASSWORD traded for one at POST /auth/token; with neither, the user `admin` and
the password SimpleAuthManager generated in $AIRFLOW_HOME (what `./run serve` runs). Every error
names the DAG, the run and the HTTP status.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import requests

from base.errors import ConfigError, DataError, ExchangeError, NotFound
from base.settings import Settings
from connectors.retry import RETRY_STATUS, RetryPolicy

TERMINAL_RUN = ("success", "failed")
DONE_TASK = ("success", "skipped", "failed", "upstream_failed", "removed")
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"

SERVER_ERROR_ATTEMPTS = 3      # Airflow's 5xx (on SQLite, a locked metadata DB) tried this often
SERVER_ERROR_BACKOFF = RetryPolicy(attempts=SERVER_ERROR_ATTEMPTS, backoff=0.5, max_backoff=2.0)
IDEMPOTENT = frozenset({"GET", "PATCH"})   # a 500 may have half-happened: only these are re-sent


class AirflowError(ExchangeError):
    """Airflow answered with an error (a status not covered below)."""
    status = 502
    exit_code = 1


class AirflowUnreachable(AirflowError):
    """Nothing answers at EXCHANGE_AIRFLOW_URL."""
    exit_code = 3


class AirflowRefused(ConfigError):
    """401/403: no or wrong credentials, or the user may not do this."""


class AirflowNotFound(NotFound):
    """404: no such DAG or DAG run in Airflow."""


class AirflowConflict(DataError):
    """409: e.g. a DAG run with this id exists already."""


class AirflowRunFailed(AirflowError):
    """The DAG run ended failed."""


def _where(dag_id: str | None, run_id: str | None) -> str:
    return ", ".join(p for p in (f"DAG {dag_id}" if dag_id else "", f"run {run_id}" if run_id else "") if p)


def _detail(r: requests.Response) -> str:
    try:
        d = r.json().get("detail")
    except (ValueError, AttributeError):
        d = None
    text = d if isinstance(d, str) else json.dumps(d, ensure_ascii=False) if d else r.text
    return " ".join(str(text).split())[:300]


class AirflowClient:
    def __init__(self, url: str, *, username: str | None = None, password: str | None = None,
                 token: str | None = None, timeout: float = 10.0):
        self.url, self.timeout = url.rstrip("/"), timeout
        self.username, self.password, self.token = username, password, token
        self._fixed_token = token is not None
        self.http = requests.Session()

    @classmethod
    def from_settings(cls, s: Settings) -> AirflowClient:
        username, password = s.airflow_username, s.airflow_password
        if s.airflow_token is None and password is None:
            username = username or "admin"
            password = generated_password(username, s.home)
        return cls(s.airflow_url, username=username, password=password, token=s.airflow_token,
                   timeout=s.airflow_timeout)

    # --- HTTP ---------------------------------------------------------------------------------
    def _login(self) -> None:
        if self.username is None or self.password is None:
            return
        r = self._send("POST", "/auth/token", None, None, json={"username": self.username, "password": self.password})
        if r.status_code in (401, 403):
            raise AirflowRefused(f"Airflow 拒绝登录 (login refused) at {self.url}: user {self.username!r}, "
                                 f"HTTP {r.status_code}: {_detail(r)}; check EXCHANGE_AIRFLOW_USERNAME and "
                                 "EXCHANGE_AIRFLOW_PASSWORD (or set EXCHANGE_AIRFLOW_TOKEN)")
        if r.status_code not in (200, 201):
            raise AirflowError(f"Airflow 登录失败 (login failed) at {self.url}/auth/token: HTTP {r.status_code}: "
                               f"{_detail(r)}")
        self.token = r.json()["access_token"]

    def _send(self, method: str, path: str, dag_id: str | None, run_id: str | None, **kw) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token and path != "/auth/token" else {}
        try:
            return self.http.request(method, self.url + path, headers=headers, timeout=self.timeout, **kw)
        except requests.RequestException as exc:
            at = f" ({_where(dag_id, run_id)})" if dag_id else ""
            raise AirflowUnreachable(f"Airflow 不可达 (Airflow unreachable) at {self.url}{at}: "
                                     f"{type(exc).__name__}") from None

    def request(self, method: str, path: str, *, dag_id: str | None = None, run_id: str | None = None,
                **kw) -> dict:
        """JSON of /api/v2{path}; errors name the DAG, the run and the HTTP status."""
        if self.token is None:
            self._login()
        r = self._send(method, "/api/v2" + path, dag_id, run_id, **kw)
        if r.status_code == 401 and not self._fixed_token and self.password is not None:
            self._login()                                  # the token expired: once more
            r = self._send(method, "/api/v2" + path, dag_id, run_id, **kw)
        for attempt in range(SERVER_ERROR_ATTEMPTS - 1):   # a busy metadata DB ("Database error"): again
            if r.status_code not in RETRY_STATUS - {429} or (r.status_code == 500 and method not in IDEMPOTENT):
                break
            time.sleep(SERVER_ERROR_BACKOFF.delay(attempt))
            r = self._send(method, "/api/v2" + path, dag_id, run_id, **kw)
        if r.status_code < 300:
            return r.json() if r.content else {}
        where = _where(dag_id, run_id) or path
        text = f"{where}: Airflow 答复 (answered) HTTP {r.status_code} to {method} /api/v2{path}: {_detail(r)}"
        if r.status_code in (401, 403):
            raise AirflowRefused(f"Airflow 拒绝访问 (access refused): {text}; check EXCHANGE_AIRFLOW_USERNAME/"
                                 "EXCHANGE_AIRFLOW_PASSWORD or EXCHANGE_AIRFLOW_TOKEN")
        if r.status_code == 404:
            raise AirflowNotFound(f"Airflow 中未找到 (not found in Airflow): {text}")
        if r.status_code == 409:
            raise AirflowConflict(f"Airflow 冲突 (conflict): {text}")
        raise AirflowError(f"Airflow 请求失败 (request failed): {text}")

    # --- what the exchange asks -----------------------------------------------------------------
    def dag(self, dag_id: str) -> dict:
        return self.request("GET", f"/dags/{quote(dag_id, safe='')}", dag_id=dag_id)

    def unpause(self, dag_id: str) -> dict:
        return self.request("PATCH", f"/dags/{quote(dag_id, safe='')}", dag_id=dag_id, json={"is_paused": False})

    def trigger(self, dag_id: str, run_id: str, note: str | None = None) -> dict:
        """A DAG run now (logical date none: Airflow 3's manual runs need none)."""
        return self.request("POST", f"/dags/{quote(dag_id, safe='')}/dagRuns", dag_id=dag_id, run_id=run_id,
                            json={"dag_run_id": run_id, "logical_date": None, "note": note})

    def dag_run(self, dag_id: str, run_id: str) -> dict:
        return self.request("GET", self._run_path(dag_id, run_id), dag_id=dag_id, run_id=run_id)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        out: list[dict] = []
        while True:
            page = self.request("GET", self._run_path(dag_id, run_id) + "/taskInstances", dag_id=dag_id,
                                run_id=run_id, params={"limit": 100, "offset": len(out)})
            out += page["task_instances"]
            if not page["task_instances"] or len(out) >= page["total_entries"]:
                return out

    def clear(self, dag_id: str, run_id: str, task_ids: list[str], downstream: bool = True) -> list[dict]:
        """Clears these tasks (and those downstream) of one DAG run, whatever their state; the
        run goes back to queued and Airflow runs them again (try_number + 1)."""
        body = {"dry_run": False, "dag_run_id": run_id, "task_ids": task_ids, "only_failed": False,
                "include_downstream": downstream, "include_upstream": False, "reset_dag_runs": True}
        return self.request("POST", f"/dags/{quote(dag_id, safe='')}/clearTaskInstances", dag_id=dag_id,
                            run_id=run_id, json=body)["task_instances"]

    def run_url(self, dag_id: str, run_id: str) -> str:
        """The run's page in Airflow's UI."""
        return f"{self.url}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"

    @staticmethod
    def _run_path(dag_id: str, run_id: str) -> str:
        return f"/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}"

    def follow(self, dag_id: str, run_id: str, on_change: Callable[[dict[str, str], str], None],
               poll: float = 1.0, timeout: float | None = None) -> dict:
        """Polls the run until it ends; on_change(task -> state, run state) at each change (a
        mapped task's state is its least advanced instance's). Returns the ended run."""
        end = None if timeout is None else time.monotonic() + timeout
        seen = None
        while True:
            run = self.dag_run(dag_id, run_id)
            states = task_states(self.task_instances(dag_id, run_id))
            if (states, run["state"]) != seen:
                seen = (states, run["state"])
                on_change(states, run["state"])
            if run["state"] in TERMINAL_RUN:
                return run
            if end is not None and time.monotonic() > end:
                raise AirflowError(f"{_where(dag_id, run_id)}: not ended after {timeout:.0f} s "
                                   f"(state {run['state']}); see {self.run_url(dag_id, run_id)}")
            time.sleep(poll)


def task_states(instances: list[dict]) -> dict[str, str]:
    """task id -> state; for a mapped task, the state of an instance not yet done if any."""
    out: dict[str, str] = {}
    for ti in instances:
        state = ti.get("state") or "none"
        prev = out.get(ti["task_id"])
        if prev is None or (prev in DONE_TASK and state not in DONE_TASK) or state == "failed":
            out[ti["task_id"]] = state
    return out


def generated_password(username: str, exchange_home: Path) -> str | None:
    """The password SimpleAuthManager generated for `username` in this machine's Airflow home
    (AIRFLOW_HOME, else EXCHANGE_HOME/airflow as `./run` sets it)."""
    home = Path(os.environ.get("AIRFLOW_HOME") or exchange_home / "airflow")
    try:
        return json.loads((home / PASSWORDS_FILE).read_text()).get(username)
    except (OSError, ValueError, AttributeError):
        return None
