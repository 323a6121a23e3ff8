"""A log version's two signed forms of one checkpoint (docs/verification.md, "The log"):
the JWS tree head (RFC 7515, as every version has) and a C2SP signed-note checkpoint
(tlog-checkpoint), for transparency-log tools. Both name the log's size and root, and the
verifiable map's root; the note's extension lines add the version, the time and the previous
checkpoint's hash."""
from __future__ import annotations

import base64
import hashlib
from datetime import datetime

from base.settings import get_settings
from catalog.signing import vmap
from catalog.signing.keys import KeyStore, tree_head_payload
from trust.checkpoint import checkpoint_body
from trust.heads import rfc3339


def origin(dataset: str) -> str:
    """The log's origin line: <EXCHANGE_LOG_ORIGIN>/<dataset>."""
    return f"{get_settings().log_origin}/{dataset}"


def key_name() -> str:
    """The name of the exchange's note key (signed-note): EXCHANGE_LOG_ORIGIN."""
    return get_settings().log_origin


def note_hash(note: str) -> str:
    return hashlib.sha256(note.encode("utf-8")).hexdigest()


def sign(keys: KeyStore, dataset: str, version: int, size: int, root: bytes, level: vmap.MapLevel,
         now: datetime, previous_head: str | None, previous_note: str | None) -> tuple[str, str]:
    """(compact JWS tree head, signed note) of a log version."""
    map_root = level.root()
    payload = {**tree_head_payload(dataset, version, size, root, now, previous_head),
               "map_bits": level.bits, "map_root": map_root.hex()}
    extensions = [f"version {version}", f"time {rfc3339(now)}",
                  f"map {level.bits} {base64.b64encode(map_root).decode()}"]
    if previous_note:
        extensions.append(f"previous {note_hash(previous_note)}")
    note = keys.sign_note(checkpoint_body(origin(dataset), size, root, extensions), key_name())
    return keys.sign_tree_head(payload), note
