"""Requests made from the CLI as a department, under the API's rules (catalog/serving/consumer.py):
authenticated by that department's exchange key, audited with the operator's OS account, and a
refusal audited as the API audits its refusals."""
from __future__ import annotations

import os
import pwd
import socket
from collections.abc import Callable
from typing import Any

from base.errors import AccessDenied, ExchangeError, Unauthenticated
from catalog.serving.access import Caller, check_purpose
from catalog.serving.consumer import Consumer
from catalog.serving.holders import holder_key
from exchange.catalogue import open_consumer


def operator() -> str:
    """The OS account at the terminal (from the process's uid, not $USER) and the host."""
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def caller(consumer: Consumer, token: str | None, department: str | None) -> Caller:
    """The department whose exchange key is given, authenticated as the API does."""
    if not token:
        raise Unauthenticated(
            "缺少交换密钥 (no exchange key): "
            "the CLI asks for a department under the API's rules: give that department's exchange "
            "key with --key or (better: not in the process list) EXCHANGE_API_KEY; the operator "
            "issues one with `exchange credentials issue DEPARTMENT`. Your OS account is audited")
    who = consumer.access.authenticate(token.strip())
    if department and department != who.department:
        raise AccessDenied(f"密钥不属于该部门 (key of another department): "
                           f"the exchange key {who.key_id} belongs to department {who.department}, "
                           f"not {department}: a key acts only for its own department")
    return who


def as_department(token: str | None, department: str | None, purpose: str | None, action: str,
                  ask: Callable[[Consumer, Caller, str], Any]) -> Any:
    """ask(consumer, caller, purpose) for the key's department, the purpose checked first; a
    refusal is audited as the API's are."""
    consumer, who = open_consumer(operator()), None
    try:
        checked = check_purpose(purpose)
        who = caller(consumer, token, department)
        return ask(consumer, who, checked)
    except ExchangeError as exc:
        if not getattr(exc, "audited", False):
            consumer.refused(who, purpose, action, exc)
        raise


def lookup(token: str | None, department: str | None, purpose: str | None, holder_id: str) -> dict:
    """The records held for a holder that the department may see for this purpose."""
    holder_key(holder_id)                  # bad input (exit 4) before anything else
    return as_department(token, department, purpose, "lookup",
                         lambda c, who, why: c.lookup(who, why, holder_id))


def bundle(token: str | None, department: str | None, purpose: str | None, record_id: str) -> dict:
    """A record's verifiable bundle (only the granted fields where the grant limits them)."""
    return as_department(token, department, purpose, "bundle",
                         lambda c, who, why: c.bundle(who, why, record_id))


def subscribe(token: str | None, department: str | None, purpose: str | None, *, dataset: str | None = None,
              holder_id: str | None = None, days: int = 30) -> dict:
    """A subscription to change notices of a dataset or (under a case) of a holder."""
    from catalog.serving.subscriptions import Subscriptions

    return as_department(token, department, purpose, "subscription.add", lambda c, who, why: Subscriptions(c).add(
        who, why, dataset=dataset, holder_id=holder_id, days=days))


def subscriptions(token: str | None, department: str | None, purpose: str | None) -> list[dict]:
    from catalog.serving.subscriptions import Subscriptions

    return as_department(token, department, purpose, "subscription.list",
                         lambda c, who, why: Subscriptions(c).list(who, why))


def unsubscribe(token: str | None, department: str | None, purpose: str | None, sid: int) -> dict:
    from catalog.serving.subscriptions import Subscriptions

    return as_department(token, department, purpose, "subscription.remove",
                         lambda c, who, why: Subscriptions(c).remove(who, why, sid))
