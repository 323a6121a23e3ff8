"""A log version's two signed forms of one checkpoint (docs/verification.md, "The log"):
the JWS tree head (RFC 7515, as every version has) and a C2SP signed-note checkpoint
(tlog-checkpoint), for transparency-log tools. Both name the log's size and root, and the
verifiable map's root; the note's extension lines add the version, the time and the previous
checkpoint's hash."""
from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from base.errors import MirrorRefused
from base.settings import get_settings
from catalog.signing import vmap
from catalog.signing.keys import KeyStore, tree_head_payload
from trust.checkpoint import checkpoint_body, parse_checkpoint
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


HEAD_FIELDS = ("dataset", "version", "tree_size", "root_hash", "map_bits", "map_root", "previous_head_hash")


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@dataclass(frozen=True)
class GivenHead:
    """A peer's signed checkpoint of a version (its JWS tree head and signed note), stored as
    it is by a mirror (Catalog.publish(head=...)): nothing is signed here. Its signature was
    verified by the caller (trust.peer_keys.verify_peer_head); here it is only read."""
    signed_tree_head: str
    checkpoint: str

    def _part(self, i: int) -> dict:
        try:
            value = json.loads(_b64url(self.signed_tree_head.split(".")[i]))
        except (ValueError, IndexError) as exc:
            raise MirrorRefused("inconsistent", f"签名树头无法读取 (unreadable tree head): {exc}") from exc
        if not isinstance(value, dict):
            raise MirrorRefused("inconsistent", "签名树头不是 JSON 对象 (tree head is not a JSON object)")
        return value

    @property
    def payload(self) -> dict:
        return self._part(1)

    @property
    def kid(self) -> str:
        return str(self._part(0).get("kid") or "")

    @property
    def issued_at(self) -> datetime:
        try:
            return datetime.fromisoformat(str(self.payload["issued_at"]).replace("Z", "+00:00"))
        except (KeyError, ValueError) as exc:
            raise MirrorRefused("inconsistent", f"签名树头缺少签发时间 (tree head has no issued_at): {exc}") from exc

    def check(self, computed: dict) -> None:
        """MirrorRefused("inconsistent") unless the head's HEAD_FIELDS equal `computed` (what
        this catalogue made of the records) and its note names the same size and root."""
        payload = self.payload
        wrong = [f"{k}: 签名 (signed) {payload.get(k)!r} != 计算 (computed) {computed[k]!r}"
                 for k in HEAD_FIELDS if payload.get(k) != computed[k]]
        body = self.checkpoint.split("\n\n", 1)[0] + "\n"
        try:
            note = parse_checkpoint(body)
            if (note.size, note.root.hex()) != (computed["tree_size"], computed["root_hash"]):
                wrong.append(f"checkpoint note: size {note.size} root {note.root.hex()}")
        except ValueError as exc:
            wrong.append(f"checkpoint note unreadable: {exc}")
        if wrong:
            raise MirrorRefused("inconsistent", f"数据集 {computed['dataset']} 版本 {computed['version']} 的签名树头"
                                f"与记录不符 (signed head does not match the records): {'; '.join(wrong)}")
