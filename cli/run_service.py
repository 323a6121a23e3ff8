"""`./run serve`: the exchange as a service on the embedded default.

Runs what `airflow standalone` runs (API server and UI, scheduler, DAG processor, triggerer;
SQLite metadata DB under AIRFLOW_HOME; LocalExecutor; SimpleAuthManager with a generated admin
password) and `exchange serve` beside it, but in order: the scheduler starts only once the API
server answers (standalone starts all at once, and on this machine the first scheduled task runs
failed, unable to reach the execution API). Prints where to log in and what to look at; Ctrl-C
or SIGTERM stops everything. Output goes to EXCHANGE_HOME/logs/. After `./run demo`, it also
runs the demo's HTTP silo while the demo's HTTP source is registered (demo/http_silo.py).
"""
from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from base.airflow_env import airflow_env
from base.errors import ConfigError, ExchangeError
from base.settings import get_settings
from demo import http_silo

SOURCE_DAGS = "source__<id> (one per registration file) and exchange_watch"
AFTER_API = ("dag-processor", "scheduler", "triggerer")
DEMO_SILO = "demo-http-silo"
SIMPLE_AUTH = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def _port_or_free(host: str, port: int) -> int:
    """The component's usual port, or any free one when it is taken (another instance)."""
    if _port_free(host, port):
        return port
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _jwt_secret(airflow_home: Path) -> str:
    """Scheduler and API server must sign task tokens with the same secret: keep one (mode 600)."""
    f = airflow_home / "jwt-secret"
    if not f.exists():
        airflow_home.mkdir(parents=True, exist_ok=True)
        fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32))
    return f.read_text().strip()


def service_env(host: str, port: int, airflow_port: int) -> dict:
    env = airflow_env()
    home = Path(env["AIRFLOW_HOME"])
    env.update({
        "AIRFLOW__API__HOST": host, "AIRFLOW__API__PORT": str(airflow_port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{airflow_port}/execution/",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",   # every source runs on its schedule
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH,
    })
    for key, default in (("WORKER_LOG_SERVER_PORT", 8793), ("TRIGGER_LOG_SERVER_PORT", 8794)):
        env.setdefault(f"AIRFLOW__LOGGING__{key}", str(_port_or_free("127.0.0.1", default)))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the `airflow` next to this python
    env.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", _jwt_secret(home))
    env.setdefault("EXCHANGE_AIRFLOW_URL", f"http://127.0.0.1:{airflow_port}")
    env.setdefault("EXCHANGE_DASHBOARD_URL", f"http://127.0.0.1:{port}")
    return env


def _healthy(url: str, need: tuple[str, ...] = ()) -> bool:
    try:
        r = requests.get(url, timeout=2)
        if r.status_code != 200:
            return False
        body = r.json()
        return all((body.get(k) or {}).get("status") == "healthy" for k in need)
    except (requests.RequestException, ValueError):
        return False


class Service:
    def __init__(self, host: str, port: int, airflow_port: int):
        self.host, self.port, self.airflow_port = host, port, airflow_port
        self.env = service_env(host, port, airflow_port)
        self.logs = get_settings().home / "logs"
        self.procs: dict[str, subprocess.Popen] = {}
        self.helpers: dict[str, str] = {}     # not the service itself: name -> the source it serves

    def start(self) -> None:
        for name, p in (("Airflow", self.airflow_port), ("exchange serve", self.port)):
            if not _port_free(self.host, p):
                raise ConfigError(f"port {p} on {self.host} is taken: stop what uses it or pass "
                                  f"{'--airflow-port' if name == 'Airflow' else '--port'} (for {name})")
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / "airflow-db-migrate.log", "ab") as out:
            if subprocess.run([self.airflow, "db", "migrate"], env=self.env, stdout=out,
                              stderr=subprocess.STDOUT).returncode != 0:
                raise ExchangeError(f"airflow db migrate failed; see {self.logs}/airflow-db-migrate.log")
        self._spawn("airflow-api-server", [self.airflow, "api-server"])
        self._spawn("exchange", [sys.executable, "-m", "cli", "serve", "--host", self.host,
                                 "--port", str(self.port), "--access-log"])
        self.start_demo_silo()

    def start_demo_silo(self) -> str | None:
        """The demo's HTTP silo, while the demo's HTTP source is registered: its scheduled runs
        need it (port and token from its Airflow connection, as the runs read them). Returns
        the source's id if started."""
        s = get_settings()
        made = http_silo.command(s.home)
        if made is None:
            return None
        self.helpers[DEMO_SILO] = made[0]
        self._spawn(DEMO_SILO, made[1])
        return made[0]

    @property
    def airflow(self) -> str:
        return str(Path(sys.executable).with_name("airflow"))

    def _spawn(self, name: str, cmd: list[str]) -> None:
        out = open(self.logs / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)

    def step(self) -> bool:
        """Start the scheduler and the rest once the API server answers; True when all is ready."""
        health = f"http://127.0.0.1:{self.airflow_port}/api/v2/monitor/health"
        if "airflow-scheduler" not in self.procs:
            if _healthy(health, ("metadatabase",)):
                for c in AFTER_API:
                    self._spawn(f"airflow-{c}", [self.airflow, c])
            return False
        return (_healthy(health, ("metadatabase", "scheduler", "triggerer", "dag_processor"))
                and _healthy(f"http://127.0.0.1:{self.port}/health"))

    def dead(self) -> str | None:
        return next((n for n, p in self.procs.items()
                     if n not in self.helpers and p.poll() is not None), None)

    def helpers_gone(self) -> list[str]:
        """Helpers that stopped (each said once): the service goes on, their source's runs fail."""
        gone = [n for n in self.helpers if self.procs[n].poll() is not None]
        for n in gone:
            print(f"serve: {n} 已停止 (stopped; see {self.logs}/{n}.log): runs of source "
                  f"{self.helpers.pop(n)} will fail until it runs again", file=sys.stderr, flush=True)
        return gone

    def stop(self, grace: float = 20) -> None:
        """SIGTERM to each component's process group, the scheduler first; whatever is left
        after `grace` seconds gets SIGKILL."""
        for _name, p in sorted(self.procs.items(), key=lambda kv: kv[0] != "airflow-scheduler"):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        end = time.monotonic() + grace
        for p in self.procs.values():
            try:
                p.wait(max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in self.procs.values():
            try:
                os.killpg(p.pid, signal.SIGKILL)     # stragglers in the group (task runners)
            except (ProcessLookupError, PermissionError):
                pass
            p.wait()

    def banner(self) -> str:
        home = Path(self.env["AIRFLOW_HOME"])
        pw = home / "simple_auth_manager_passwords.json.generated"
        a, x = f"http://127.0.0.1:{self.airflow_port}", f"http://127.0.0.1:{self.port}"
        return "\n".join([
            "交换平台已运行 (The exchange is running; Ctrl-C 停止全部 stops both).",
            f"  Airflow 界面 (UI)      {a}   用户 (user): admin   密码 (password): 见 {pw}",
            f"  数据看板 (Dashboard)   {x}/dashboard/",
            f"  接口文档 (API docs)    {x}/docs",
            f"  日志 (Logs)            {self.logs}/airflow-*.log, {self.logs}/exchange.log",
            *([f"  示例数据源接口 (demo silo API)  数据源 (source) {self.helpers[DEMO_SILO]} "
               f"(log: {self.logs}/{DEMO_SILO}.log)"] if DEMO_SILO in self.helpers else []),
            f"  告警发往 (alerts go to)  {get_settings().alerts}  (EXCHANGE_ALERTS; 查看 list: ./run exchange alerts)",
            "可以看什么 (what to look at):",
            f"  Airflow: DAG {SOURCE_DAGS}；每次运行的任务 (tasks) 抽取 extract → 规整 conform → 校验 validate →",
            "  发布 publish → 公告 announce，任务日志，资产 Assets (exchange://datasets/<dataset>)，",
            "  运行期限 (deadline)。",
            "  数据看板 (Dashboard)：每个数据集的时效 (按时 fresh / 逾期 late / 严重逾期 stale)、",
            "  最近运行、质量、告警。",
        ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="./run serve", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="exchange serve (API and dashboard)")
    p.add_argument("--airflow-port", type=int, default=8080, help="Airflow's API server and UI")
    p.add_argument("--ready-timeout", type=float, default=300, help="seconds to wait for both")
    args = p.parse_args(argv)
    stopping = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.append(1))
    svc = Service(args.host, args.port, args.airflow_port)
    try:
        svc.start()
    except ExchangeError as exc:
        svc.stop(grace=10)
        print(f"serve: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"正在启动 (starting) Airflow (port {args.airflow_port}) 和 exchange serve (port {args.port}); "
          f"logs in {svc.logs}", flush=True)
    started, shown, code = time.monotonic(), False, 0
    try:
        while not stopping:
            svc.helpers_gone()
            if (gone := svc.dead()):
                print(f"serve: {gone} 意外停止 (stopped unexpectedly); see {svc.logs}/{gone}.log", file=sys.stderr)
                code = 1
                break
            if not shown and svc.step():
                print(svc.banner(), flush=True)
                shown = True
            elif not shown and time.monotonic() - started > args.ready_timeout:
                print(f"serve: {args.ready_timeout:.0f} 秒后仍未就绪 (not ready); see {svc.logs}", file=sys.stderr)
                code = 1
                break
            time.sleep(1)
    finally:
        print("正在停止 (stopping) Airflow 和 exchange serve …", flush=True)
        svc.stop()
        print("已停止 (stopped)", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
