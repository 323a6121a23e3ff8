"""The Airflow API client's errors against a real HTTP server on 127.0.0.1 that answers as
Airflow 3's /api/v2 and /auth/token do (status codes and JSON shapes): wrong credentials (401),
an unknown DAG (404), a run id taken (409), an expired token, a server error, nothing listening;
and `exchange run` refusing a paused DAG or an unreachable Airflow with one clear line."""
from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from base.settings import get_settings, reset_settings
from cli import main as cli
from exchange import manual_run
from exchange.airflow_api import (
    AirflowClient,
    AirflowConflict,
    AirflowError,
    AirflowNotFound,
    AirflowRefused,
    AirflowUnreachable,
    task_states,
)
from tests.conftest import free_port, ledger, register_demo_source

SOURCE = "smr_business_licence"
DAG = f"source__{SOURCE}"


class _Airflow(BaseHTTPRequestHandler):
    def _reply(self, status: int, body: dict | None = None):
        data = json.dumps(body or {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str):
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")
        srv.calls.append((method, self.path, self.headers.get("Authorization"), body))
        if self.path == "/auth/token" and method == "POST":
            if srv.users.get(body.get("username")) != body.get("password"):
                return self._reply(401, {"detail": "Invalid credentials"})
            token = secrets.token_hex(8)
            srv.tokens.add(token)
            return self._reply(201, {"access_token": token})
        auth = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        if auth not in srv.tokens:
            return self._reply(401, {"detail": "Not authenticated"})
        if srv.expire_next:
            srv.expire_next = False
            srv.tokens.discard(auth)
            return self._reply(401, {"detail": "Signature has expired"})
        if srv.fail_with:
            return self._reply(srv.fail_with, {"detail": "Internal Server Error"})
        parts = self.path.split("?")[0].split("/")[3:]        # /api/v2/dags/{dag_id}/...
        dag_id = parts[1]
        if dag_id not in srv.dags:
            return self._reply(404, {"detail": f"The Dag with ID: `{dag_id}` was not found"})
        if len(parts) == 2 and method == "GET":
            return self._reply(200, {"dag_id": dag_id, "is_paused": srv.dags[dag_id]})
        if len(parts) == 2 and method == "PATCH":
            srv.dags[dag_id] = body["is_paused"]
            return self._reply(200, {"dag_id": dag_id, "is_paused": srv.dags[dag_id]})
        if parts[2:] == ["dagRuns"] and method == "POST":
            if body["dag_run_id"] in srv.runs:
                return self._reply(409, {"detail": f"DAG Run with id {body['dag_run_id']} already exists"})
            srv.runs.add(body["dag_run_id"])
            return self._reply(200, {"dag_run_id": body["dag_run_id"], "state": "queued"})
        return self._reply(404, {"detail": "Not Found"})

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PATCH(self):
        self._handle("PATCH")

    def log_message(self, *args):
        pass


@pytest.fixture
def airflow():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Airflow)
    srv.users, srv.tokens, srv.calls = {"steward": "s3cret-pass"}, set(), []
    srv.dags, srv.runs, srv.expire_next, srv.fail_with = {DAG: False}, set(), False, 0
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_a_wrong_password_is_refused_naming_the_user_and_the_status(airflow):
    api = AirflowClient(airflow.url, username="steward", password="wrong")
    with pytest.raises(AirflowRefused, match=r"login refused.*'steward'.*HTTP 401.*EXCHANGE_AIRFLOW_PASSWORD") as e:
        api.dag(DAG)
    assert e.value.exit_code == 2
    assert [c[:2] for c in airflow.calls] == [("POST", "/auth/token")]     # nothing asked without a token


def test_the_password_buys_a_token_sent_on_every_request_and_renewed_when_it_expires(airflow):
    api = AirflowClient(airflow.url, username="steward", password="s3cret-pass")
    assert api.dag(DAG) == {"dag_id": DAG, "is_paused": False}
    first = airflow.calls[-1][2]
    assert first.startswith("Bearer ") and first.removeprefix("Bearer ") in airflow.tokens
    airflow.expire_next = True
    assert api.dag(DAG)["dag_id"] == DAG
    logins = [c for c in airflow.calls if c[1] == "/auth/token"]
    assert len(logins) == 2 and airflow.calls[-1][2] != first


def test_a_given_token_is_used_as_it_is_and_a_refusal_names_dag_and_status(airflow):
    api = AirflowClient(airflow.url, token="not-a-token")
    with pytest.raises(AirflowRefused, match=rf"DAG {DAG}: .*HTTP 401 to GET /api/v2/dags/{DAG}: Not authenticated"):
        api.dag(DAG)
    assert not [c for c in airflow.calls if c[1] == "/auth/token"]


def test_an_unknown_dag_and_a_taken_run_id_are_named(airflow):
    api = AirflowClient(airflow.url, username="steward", password="s3cret-pass")
    with pytest.raises(AirflowNotFound, match=r"DAG source__nope: .*HTTP 404.*`source__nope` was not found.*"
                                              r"DAG processor") as e:
        manual_run.ready_dag(api, "source__nope", unpause=False)
    assert e.value.exit_code == 7
    api.trigger(DAG, "manual__20261205T010000Z")
    with pytest.raises(AirflowConflict, match=rf"DAG {DAG}, run manual__20261205T010000Z: .*HTTP 409 .*already "
                                              "exists") as e:
        api.trigger(DAG, "manual__20261205T010000Z")
    assert e.value.exit_code == 4
    assert airflow.calls[-1][3] == {"dag_run_id": "manual__20261205T010000Z", "logical_date": None,
                                    "note": None}


def test_a_server_error_and_nothing_listening(airflow):
    airflow.fail_with = 503
    api = AirflowClient(airflow.url, username="steward", password="s3cret-pass")
    with pytest.raises(AirflowError, match=rf"DAG {DAG}, run r1: .*HTTP 503 to GET .*Internal Server Error"):
        api.dag_run(DAG, "r1")
    asked = [c for c in airflow.calls if c[1].startswith("/api/v2/dags/")]
    assert len(asked) == 3                                  # a 5xx is asked again, twice, then reported
    airflow.fail_with, airflow.calls[:] = 500, []
    with pytest.raises(AirflowError, match="HTTP 500 to POST"):
        api.trigger(DAG, "manual__x")
    assert len([c for c in airflow.calls if c[0] == "POST" and "dagRuns" in c[1]]) == 1   # never re-sent
    airflow.fail_with = 0
    gone = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(AirflowUnreachable, match=rf"Airflow unreachable\) at {gone} \(DAG {DAG}\)") as e:
        AirflowClient(gone, token="t").dag(DAG)
    assert e.value.exit_code == 3


def test_without_credentials_the_generated_admin_password_is_used(airflow, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    (tmp_path / "simple_auth_manager_passwords.json.generated").write_text(json.dumps({"admin": "gen-pw"}))
    airflow.users["admin"] = "gen-pw"
    monkeypatch.setenv("EXCHANGE_AIRFLOW_URL", airflow.url)
    reset_settings()
    try:
        assert AirflowClient.from_settings(get_settings()).dag(DAG)["dag_id"] == DAG
    finally:
        reset_settings()
    assert airflow.calls[0][3] == {"username": "admin", "password": "gen-pw"}


def test_a_mapped_task_shows_its_least_advanced_instance():
    tis = [{"task_id": "extract", "state": "success"}, {"task_id": "extract", "state": "running"},
           {"task_id": "plan", "state": "success"}, {"task_id": "publish", "state": None}]
    assert task_states(tis) == {"extract": "running", "plan": "success", "publish": "none"}
    assert task_states([{"task_id": "x", "state": "failed"}, {"task_id": "x", "state": "running"}])["x"] == "running"


def _env(monkeypatch, url: str):
    monkeypatch.setenv("EXCHANGE_AIRFLOW_URL", url)
    monkeypatch.setenv("EXCHANGE_AIRFLOW_USERNAME", "steward")
    monkeypatch.setenv("EXCHANGE_AIRFLOW_PASSWORD", "s3cret-pass")
    reset_settings()


def test_run_refuses_an_unreachable_airflow_and_names_local(home, silo_2k, monkeypatch, capsys):
    register_demo_source(home, silo_2k[0])
    gone = f"http://127.0.0.1:{free_port()}"
    _env(monkeypatch, gone)
    assert cli(["run", SOURCE]) == 3
    err = capsys.readouterr().err
    assert f"Airflow 不可达 (Airflow unreachable) at {gone}" in err and "use --local" in err
    assert ledger().runs(SOURCE) == []                  # no run anywhere


def test_run_refuses_a_paused_dag_unless_told_to_unpause(home, silo_2k, monkeypatch, capsys, airflow):
    register_demo_source(home, silo_2k[0])
    _env(monkeypatch, airflow.url)
    airflow.dags[DAG] = True
    assert cli(["run", SOURCE]) == 2
    assert f"DAG {DAG} 在 Airflow 中已暂停 (paused)" in capsys.readouterr().err and not airflow.runs
    airflow.runs.add("manual__taken")
    assert cli(["run", SOURCE, "--unpause", "--key", "manual__taken"]) == 4
    assert airflow.dags[DAG] is False                   # unpaused through PATCH
    assert "HTTP 409" in capsys.readouterr().err
    assert cli(["run", SOURCE, "--key", "../x"]) == 2   # a run key the exchange would refuse: never sent
    assert not [c for c in airflow.calls if c[1].endswith("dagRuns") and c[3]["dag_run_id"] == "../x"]
