"""One small hierarchy of domain errors. Messages say what to do next.

`status` is the HTTP status the API maps an error to; `exit_code` is what the CLI exits with.
"""
from __future__ import annotations

from collections.abc import Iterable

# the root, NotFound and VerificationError live with the verifier, which ships alone (trust/)
from trust.errors import ExchangeError as ExchangeError  # re-exported
from trust.errors import NotFound as NotFound
from trust.errors import VerificationError as VerificationError  # re-exported


class ConfigError(ExchangeError):
    """Settings or a registration file are wrong."""
    status = 500
    exit_code = 2


class UnknownName(ConfigError):
    """A name (source, certificate type, connector kind …) that is not known."""

    def __init__(self, kind: str, name: str, known: Iterable[str], where: str | None = None):
        known = sorted(known)
        at = f"{where}: " if where else ""
        super().__init__(f"{at}unknown {kind} {name!r}; known: {', '.join(map(str, known)) or '(none)'}")
        self.kind, self.name, self.known = kind, name, known


class SourceError(ExchangeError):
    """A silo could not be read: the run fails and publishes nothing."""
    status = 502
    exit_code = 3


class DataError(ExchangeError):
    """Input that breaks a rule: names the source, the row and the rule."""
    status = 422
    exit_code = 4

    def __init__(self, message: str, *, source: str | None = None, row: int | None = None,
                 rule: str | None = None):
        where = ", ".join(p for p in (f"source {source}" if source else "",
                                      f"row {row}" if row is not None else "",
                                      f"rule {rule}" if rule else "") if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.source, self.row, self.rule = source, row, rule


class GateHeld(DataError):
    """A run-level quality gate stopped the run until a steward approves it."""


class ReconciliationError(ExchangeError):
    """Rows extracted != accepted + quarantined: something was lost; nothing is published."""
    exit_code = 5


class PublishError(ExchangeError):
    """A version could not be published; nothing of it was kept."""
    exit_code = 6


class UnknownCopy(NotFound):
    """A copy of a record (version, leaf hash) the exchange never published."""


class Unauthenticated(ExchangeError):
    """No credential, or one that is unknown, revoked or expired."""
    status = 401
    exit_code = 9


class AccessDenied(ExchangeError):
    """The department may not see this for this purpose."""
    status = 403
    exit_code = 9


class InvalidRequest(ExchangeError):
    """A malformed identifier, purpose or size: refused before any query."""
    status = 400
    exit_code = 4


class Conflict(ExchangeError):
    """The request clashes with the state of what it names (an objection already open, one
    already closed): the message names it and says what to do instead."""
    status = 409
    exit_code = 4


class RateLimited(ExchangeError):
    status = 429
    exit_code = 9

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


class MirrorRefused(VerificationError):
    """A peer's dataset version this exchange will not hold as a mirror (federation): a
    rewritten or split history, an unknown key, records that do not match the signed head.
    `kind`: rewrite | split_view | unknown_key | bad_records | inconsistent. Re-exported as
    catalog.federation.mirror.MirrorRefused; nothing of the refused version is kept."""
    KINDS = ("rewrite", "split_view", "unknown_key", "bad_records", "inconsistent")

    def __init__(self, kind: str, message: str):
        if kind not in self.KINDS:
            raise ValueError(f"unknown refusal kind {kind!r}; known: {', '.join(self.KINDS)}")
        ExchangeError.__init__(self, f"镜像被拒绝 (mirror refused, {kind}): {message}")
        self.kind = kind
        self.step, self.step_name, self.detail = 0, f"mirror {kind}", message
