"""Alerts reach a real webhook and a real SMTP server on 127.0.0.1, retry a bounded number of
times, never raise, keep secrets out; the freshness watch says each change once, from real
pipeline runs on a SQLite silo."""
from __future__ import annotations

import shutil
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from base import clock
from base.errors import ConfigError, UnknownName
from base.settings import get_settings, reset_settings
from exchange.alerts import Alert, send
from exchange.alerts.channels import parse
from exchange.alerts.watch import check, decide
from tests.alertsinks import SMTPReceiver
from tests.conftest import TEST_PASSPHRASE, catalog, ledger, register_demo_source

SOURCE, DATASET = "smr_business_licence", "business_licence.market_regulation"


@pytest.fixture
def smtp():
    r = SMTPReceiver()
    yield r
    r.close()


def configure(monkeypatch, alerts: str, **env):
    monkeypatch.setenv("EXCHANGE_ALERTS", alerts)
    monkeypatch.setenv("EXCHANGE_DASHBOARD_URL", "http://dash.example:8000/")
    for k, v in env.items():
        monkeypatch.setenv(k, str(v))
    reset_settings()
    return get_settings()


def failure(message="extract: source smr_business_licence: the silo cannot be opened") -> Alert:
    return Alert("failed", DATASET, source=SOURCE, dag_id=f"source__{SOURCE}",
                 run_id="manual__2026-11-21T10:00:00+00:00", task="extract", state="failed",
                 message=message)


def test_channels_are_parsed_and_bad_ones_refused():
    chans = parse("log, webhook:http://127.0.0.1:9000/hook, email:ops@example.gov.cn;b@example.gov.cn")
    assert [c.name for c in chans] == ["log", "webhook", "email"]
    assert chans[2].to == ("ops@example.gov.cn", "b@example.gov.cn")
    with pytest.raises(UnknownName, match="known: email, log, webhook"):
        parse("log,slack:#ops")
    with pytest.raises(ConfigError, match="http"):
        parse("webhook:ftp://x")
    with pytest.raises(ConfigError, match="addresses"):
        parse("email:nobody")
    assert [c.name for c in parse("")] == ["log"]


def test_webhook_gets_the_alert_with_links_and_it_is_recorded(home, hook, monkeypatch):
    s = configure(monkeypatch, f"webhook:{hook.url}")
    delivered = send(failure())
    assert delivered == [{"channel": "webhook", "target": hook.url, "ok": True, "attempts": 1, "error": None}]
    [got] = hook.received
    assert (got["kind"], got["source"], got["dataset"], got["task"], got["state"]) == (
        "failed", SOURCE, DATASET, "extract", "failed")
    assert got["run_id"] == "manual__2026-11-21T10:00:00+00:00" and "cannot be opened" in got["message"]
    assert got["links"]["dashboard"] == f"http://dash.example:8000/dashboard/datasets/{DATASET}"
    assert got["links"]["airflow"] == (f"{s.airflow_url}/dags/source__{SOURCE}/runs/"
                                       "manual__2026-11-21T10%3A00%3A00%2B00%3A00")
    [row] = ledger().alerts()
    assert row["kind"] == "failed" and row["task_id"] == "extract" and row["delivered"][0]["ok"]


def test_webhook_retries_then_gives_up_without_raising(home, hook, monkeypatch, caplog):
    configure(monkeypatch, f"webhook:{hook.url}?token=s3cr3t-token", EXCHANGE_ALERTS_ATTEMPTS=3)
    hook.server.fail_first = 2                       # two 503s, then accepted
    hook.server.fail_status = 503
    [d] = send(failure())
    assert d["ok"] and d["attempts"] == 3 and len(hook.received) == 1
    hook.server.fail_first = 10                      # down for longer than the retries
    [d] = send(failure())
    assert not d["ok"] and d["attempts"] == 3 and d["error"] == "HTTP 503"
    hook.server.fail_first, hook.server.fail_status = 1, 400     # a 4xx is not retried
    [d] = send(failure())
    assert not d["ok"] and d["attempts"] == 1 and d["error"] == "HTTP 400"
    assert "s3cr3t-token" not in caplog.text and "s3cr3t-token" not in str(ledger().alerts())
    assert [a["delivered"][0]["ok"] for a in ledger().alerts()] == [False, False, True]


def test_a_slow_or_absent_webhook_is_bounded_by_the_timeout(home, hook, monkeypatch):
    configure(monkeypatch, f"log,webhook:{hook.url}", EXCHANGE_ALERTS_TIMEOUT=0.5,
              EXCHANGE_ALERTS_ATTEMPTS=2)
    hook.server.delay = 3
    started = time.monotonic()
    log_result, hook_result = send(failure())
    assert log_result["ok"] and not hook_result["ok"] and hook_result["error"] == "ReadTimeout"
    assert time.monotonic() - started < 3
    hook.close()                                     # nobody listening at all
    [_, d] = send(failure())
    assert not d["ok"] and d["error"] == "ConnectionError"


def test_email_reaches_the_smtp_server_without_secrets(home, smtp, monkeypatch):
    configure(monkeypatch, "email:ops@example.gov.cn;duty@example.gov.cn",
              EXCHANGE_SMTP_PORT=smtp.port, EXCHANGE_SMTP_FROM="exchange@example.gov.cn")
    leaky = f"extract: postgresql://etl:hunter2pw@db.internal/silo refused; key {TEST_PASSPHRASE}"
    [d] = send(failure(leaky))
    assert d["ok"], d
    [m] = smtp.messages
    assert m["to"] == ["ops@example.gov.cn", "duty@example.gov.cn"] and m["from"] == "exchange@example.gov.cn"
    msg = m["message"]
    assert DATASET in msg["Subject"] and "run failed" in msg["Subject"]
    body = msg.get_content()
    assert f"/dashboard/datasets/{DATASET}" in body and "task: extract" in body
    assert "hunter2pw" not in body + msg["Subject"] and TEST_PASSPHRASE not in body
    assert "postgresql://***@db.internal" in body
    smtp.close()
    configure(monkeypatch, "email:ops@example.gov.cn", EXCHANGE_SMTP_PORT=smtp.port,
              EXCHANGE_ALERTS_ATTEMPTS=2, EXCHANGE_ALERTS_TIMEOUT=1)
    [d] = send(failure())
    assert not d["ok"] and d["attempts"] == 2 and "ConnectionRefusedError" in d["error"]


def test_a_misconfigured_channel_list_still_logs_and_records(home, monkeypatch, caplog):
    configure(monkeypatch, "pager:123")
    assert send(failure()) == []
    assert "misconfigured" in caplog.text and "cannot be opened" in caplog.text
    assert ledger().alerts()[0]["kind"] == "failed"


def test_watch_decides_once_per_change():
    assert decide("late", None) == "late" and decide("late", "late") is None
    assert decide("stale", "late") == "stale" and decide("stale", "stale") is None
    assert decide("fresh", "stale") == "recovered" and decide("fresh", "recovered") is None
    assert decide("fresh", None) is None and decide("never", None) is None
    assert decide("late", "recovered") == "late"


def _backdate(hours: float) -> None:
    """Make the last refresh `hours` old (the catalogue's runs, as if time had passed)."""
    cat = catalog()
    old = clock.now() - timedelta(hours=hours)
    with cat.engine.begin() as c:
        c.execute(sa.text("UPDATE runs SET finished_at = :t, started_at = :t"), {"t": old})


def test_watch_alerts_once_when_late_then_stale_then_recovered(home, silo_2k, tmp_path, hook, monkeypatch):
    from exchange import stages

    configure(monkeypatch, f"webhook:{hook.url}")
    silo = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], silo)
    register_demo_source(home, silo)
    stages.run_all(SOURCE, "r1")
    assert check() == [] and hook.received == []          # fresh: nothing to say
    _backdate(30)                                          # daily cycle: due 6 h ago
    [late] = check()
    assert late["kind"] == "late" and late["dataset"] == DATASET and late["source"] == SOURCE
    assert hook.received[0]["freshness"] == "late" and "h overdue" in hook.received[0]["message"]
    assert check() == [] and len(hook.received) == 1       # already said
    _backdate(60)
    assert [a["kind"] for a in check()] == ["stale"]
    assert check() == []
    stages.run_all(SOURCE, "r2")                            # a fresh run
    [back] = check()
    assert back["kind"] == "recovered" and back["freshness"] == "fresh"
    assert check() == []
    assert [h["kind"] for h in hook.received] == ["late", "stale", "recovered"]
    assert [a["kind"] for a in ledger().alerts()] == ["recovered", "stale", "late"]


def test_cli_lists_alerts_and_runs_the_watch(home, hook, monkeypatch, capsys):
    import json

    from cli import main

    configure(monkeypatch, f"webhook:{hook.url}")
    send(failure())
    assert main(["alerts", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["kind"] == "failed" and row["dataset_id"] == DATASET and row["delivered"][0]["ok"]
    assert main(["alerts"]) == 0 and "run failed" not in capsys.readouterr().err
    assert main(["watch", "--json"]) == 0 and json.loads(capsys.readouterr().out) == []
    configure(monkeypatch, "pager:1")
    assert main(["watch"]) == 2 and "unknown alert channel 'pager'" in capsys.readouterr().err


def test_a_task_that_died_leaves_no_run_running(home, silo_2k, tmp_path, hook, monkeypatch):
    """A task killed before the exchange could record anything (SIGKILL, out of memory): the
    failure callback marks the catalogue's run failed and says so; a run whose stage recorded
    its own error keeps that error."""
    from types import SimpleNamespace

    from exchange.alerts.notifier import ExchangeNotifier
    from exchange.stages import run_key

    configure(monkeypatch, f"webhook:{hook.url}")
    silo = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], silo)
    register_demo_source(home, silo)
    from exchange import stages
    stages.run_all(SOURCE, "r1")                              # the source is known to the catalogue

    def context(run_id, task):
        return {"dag": SimpleNamespace(dag_id=f"source__{SOURCE}"), "ti": SimpleNamespace(task_id=task),
                "run_id": run_id, "reason": "Task was killed externally"}

    died = "manual__2026-11-22T01:00:00+00:00"
    run = ledger().start_run(SOURCE, run_key(died), died)         # the task began, then was killed
    ExchangeNotifier(source=SOURCE, dataset=DATASET).notify(context(died, "publish"))
    settled = ledger().get_run(SOURCE, run_key(died))
    assert settled.id == run.id and settled.state == "failed" and settled.finished_at is not None
    assert "task publish failed" in settled.message and "killed externally" in settled.message
    assert hook.received[-1]["message"] == settled.message and hook.received[-1]["task"] == "publish"

    recorded = "manual__2026-11-22T02:00:00+00:00"
    ledger().fail_run(ledger().start_run(SOURCE, run_key(recorded), recorded).id, "extract: the silo cannot be opened")
    ExchangeNotifier(source=SOURCE, dataset=DATASET).notify(context(recorded, "extract"))
    assert ledger().get_run(SOURCE, run_key(recorded)).message == "extract: the silo cannot be opened"
    assert hook.received[-1]["message"] == "extract: the silo cannot be opened"
