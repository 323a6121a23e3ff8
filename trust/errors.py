"""The root of the exchange's errors and the two the verifier raises (base/errors.py builds on them).

`status` is the HTTP status the API maps an error to; `exit_code` is what a CLI exits with.
"""
from __future__ import annotations


class ExchangeError(Exception):
    status = 500
    exit_code = 1


class NotFound(ExchangeError):
    status = 404
    exit_code = 7


class VerificationError(ExchangeError):
    """A bundle failed verification at a numbered step."""
    status = 400
    exit_code = 8

    def __init__(self, step: int, name: str, message: str):
        super().__init__(f"step {step} ({name}) failed: {message}")
        self.step, self.step_name, self.detail = step, name, message


class InputError(ExchangeError):
    """A bundle, JWKS or key status file that cannot be read or is not JSON."""
    status = 400
    exit_code = 2
