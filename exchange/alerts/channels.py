"""Where alerts go: the log, a webhook (JSON POST), e-mail (stdlib smtplib).

Each channel's `deliver` returns {channel, target, ok, attempts, error}; bounded retries with a
timeout per attempt; targets and errors are shown without credentials."""
from __future__ import annotations

import logging
import os
import smtplib
import time
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import urlsplit

from base.errors import ConfigError, UnknownName
from exchange.alerts.alert import Alert, log, redact

RETRY_STATUS = {429, 500, 502, 503, 504}


def _result(ch, ok: bool, attempts: int, error: str | None = None) -> dict:
    return {"channel": ch.name, "target": ch.target, "ok": ok, "attempts": attempts, "error": error}


@dataclass(frozen=True)
class LogChannel:
    name = "log"
    target = "exchange.alerts"

    def deliver(self, alert: Alert, settings) -> dict:
        level = logging.INFO if alert.kind == "recovered" else logging.WARNING
        links = " ".join(f"{k}: {v}" for k, v in alert.links(settings).items())
        log.log(level, "%s %s", alert.summary(), links)
        return _result(self, True, 1)


@dataclass(frozen=True)
class WebhookChannel:
    url: str
    name = "webhook"

    @property
    def target(self) -> str:            # no credentials, no query (tokens live there)
        u = urlsplit(self.url)
        return f"{u.scheme}://{u.hostname}{f':{u.port}' if u.port else ''}{u.path}"

    def deliver(self, alert: Alert, settings) -> dict:
        import requests  # lazy: DAG parse (the notifier reaches this module)

        error = None
        for attempt in range(1, settings.alert_attempts + 1):
            try:
                r = requests.post(self.url, json=alert.payload(settings), timeout=settings.alert_timeout)
                if r.status_code < 300:
                    return _result(self, True, attempt)
                error = f"HTTP {r.status_code}"
                if r.status_code not in RETRY_STATUS:
                    break
            except requests.RequestException as exc:
                error = type(exc).__name__          # its text carries the URL: not shown
            if attempt < settings.alert_attempts:
                time.sleep(min(0.5 * 2 ** (attempt - 1), 4.0))
        log.error("alert webhook %s failed after %d attempt(s): %s; the alert: %s",
                  self.target, attempt, error, alert.summary())
        return _result(self, False, attempt, error)


@dataclass(frozen=True)
class EmailChannel:
    to: tuple[str, ...]
    name = "email"

    @property
    def target(self) -> str:
        return ", ".join(self.to)

    def message(self, alert: Alert, settings) -> EmailMessage:
        m = EmailMessage()
        m["From"], m["To"] = settings.smtp_from, ", ".join(self.to)
        m["Subject"] = alert.summary()[:180]
        p = alert.payload(settings)
        lines = [alert.summary(), ""]
        lines += [f"{k}: {p[k]}" for k in ("kind", "source", "dataset", "dag_id", "run_id", "task",
                                            "state", "freshness", "at") if p.get(k)]
        lines += [f"{k}: {v}" for k, v in p["links"].items()]
        m.set_content("\n".join(lines))
        return m

    def deliver(self, alert: Alert, settings) -> dict:
        error, msg = None, self.message(alert, settings)
        user, password = os.environ.get("EXCHANGE_SMTP_USER"), os.environ.get("EXCHANGE_SMTP_PASSWORD")
        for attempt in range(1, settings.alert_attempts + 1):
            try:
                with smtplib.SMTP(settings.smtp_host, settings.smtp_port,
                                  timeout=settings.alert_timeout) as smtp:
                    if settings.smtp_starttls:
                        smtp.starttls()
                    if user:
                        smtp.login(user, password or "")
                    smtp.send_message(msg)
                return _result(self, True, attempt)
            except smtplib.SMTPAuthenticationError as exc:
                error = f"SMTP authentication refused ({exc.smtp_code})"
                break
            except (OSError, smtplib.SMTPException) as exc:
                error = redact(f"{type(exc).__name__}: {exc}")
            if attempt < settings.alert_attempts:
                time.sleep(min(0.5 * 2 ** (attempt - 1), 4.0))
        log.error("alert e-mail to %s via %s:%s failed after %d attempt(s): %s; the alert: %s",
                  self.target, settings.smtp_host, settings.smtp_port, attempt, error, alert.summary())
        return _result(self, False, attempt, error)


KNOWN = ("log", "webhook", "email")


def parse(spec: str) -> list:
    """`log,webhook:http://…,email:a@x;b@y` -> channels. Unknown kinds are refused."""
    out = []
    for item in filter(None, (p.strip() for p in (spec or "log").split(","))):
        kind, _, arg = item.partition(":")
        kind = kind.strip().lower()
        if kind == "log":
            out.append(LogChannel())
        elif kind == "webhook":
            if urlsplit(arg).scheme not in ("http", "https") or not urlsplit(arg).hostname:
                raise ConfigError(f"EXCHANGE_ALERTS: webhook needs an http(s) URL, e.g. "
                                  f"webhook:http://127.0.0.1:9000/hook (got {redact(arg)!r})")
            out.append(WebhookChannel(arg))
        elif kind == "email":
            to = tuple(a.strip() for a in arg.replace(";", " ").split() if a.strip())
            if not to or not all("@" in a for a in to):
                raise ConfigError(f"EXCHANGE_ALERTS: email needs addresses, e.g. email:ops@example.gov.cn "
                                  f"(several separated by ';'), got {arg!r}")
            out.append(EmailChannel(to))
        else:
            raise UnknownName("alert channel", kind, KNOWN)
    return out or [LogChannel()]


def channels(settings) -> list:
    return parse(settings.alerts)
