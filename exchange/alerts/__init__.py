"""Alerts for late and broken pipelines.

One `Alert` goes to every channel named in EXCHANGE_ALERTS (comma-separated: `log`,
`webhook:URL`, `email:ADDRESS`) and is recorded in the catalogue. `send` never raises: a channel
that fails is logged and its failure recorded. Inside Airflow, `notifier.ExchangeNotifier` calls it.
"""
from __future__ import annotations

from base.settings import get_settings
from exchange.alerts.alert import KINDS, Alert, log, redact
from exchange.alerts.channels import channels

__all__ = ["KINDS", "Alert", "log", "redact", "send"]


def send(alert: Alert, settings=None, ledger=None, record: bool = True) -> list[dict]:
    """Deliver to every configured channel, then record the alert with each delivery's outcome.
    Never raises: whatever goes wrong is logged."""
    try:
        if settings is None:
            settings = get_settings()
        targets = channels(settings)
    except Exception as exc:          # a bad EXCHANGE_ALERTS must not hide the alert itself
        log.error("alert channels misconfigured (%s); the alert, to the log: %s", exc, alert.summary())
        targets, settings = [], settings
    delivered = []
    for ch in targets:
        try:
            delivered.append(ch.deliver(alert, settings))
        except Exception as exc:      # a channel's own bug: logged, never raised into a task
            delivered.append({"channel": ch.name, "target": ch.target, "ok": False, "attempts": 1,
                              "error": redact(f"{type(exc).__name__}: {exc}")})
            log.error("alert channel %s failed: %s", ch.name, delivered[-1]["error"])
    if record and settings is not None:
        try:
            if ledger is None:
                from catalog.ledger.service import Ledger  # lazy: DAG parse (the notifier loads with each DAG)
                ledger = Ledger(settings.catalog_url)
            ledger.record_alert(alert.payload(settings) | {"at": alert.at}, delivered)
        except Exception as exc:
            log.error("alert not recorded in the catalogue (%s: %s): %s", type(exc).__name__,
                      redact(str(exc)), alert.summary())
    return delivered
