"""Holder ids and record ids as a consumer gives them: normalised and checked before any query."""
from __future__ import annotations

import re

from base.errors import InvalidRequest
from schemas.identifiers import ric_problem, uscc_problem
from schemas.normalize import code_key_scalar

RECORD_ID_RE = re.compile(r"^[0-9a-f]{32}$")
MAX_HOLDER_TEXT = 64


def holder_key(text: str | None) -> str:
    """A USCC or resident ID in any spelling, normalised and checked before any query."""
    if not text or len(text) > MAX_HOLDER_TEXT:
        raise InvalidRequest("缺少持证主体编号 (no holder id): give a holder id: an 18-character USCC or resident ID")
    key = code_key_scalar(text) or ""
    if len(key) != 18 or not key.isascii() or not key.isalnum() or (uscc_problem(key) and ric_problem(key)):
        raise InvalidRequest("持证主体编号无效 (invalid holder id): "
                             "the holder id is neither a valid USCC (GB 32100) nor a valid "
                             "resident ID (GB 11643): check its characters and check digit")
    return key


def record_id_ok(record_id: str) -> str:
    if not RECORD_ID_RE.match(record_id or ""):
        raise InvalidRequest("记录编号无效 (bad record id): "
                             "a record id is 32 lower-case hex characters (from a holder lookup)")
    return record_id
