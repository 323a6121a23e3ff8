"""Witness cosignatures on checkpoints (C2SP tlog-cosignature, Ed25519 "cosignature/v1").

A cosignature is a signed-note signature line "— <name> base64(key ID ‖ timestamp ‖ signature)":
key ID = SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key)[:4], timestamp a big-endian u64 of POSIX
seconds, signature Ed25519 over "cosignature/v1\\n" "time <timestamp>\\n" and the checkpoint's
whole note body (extension lines included, no signature lines). The verifier key is
"<name>+<key ID, 8 hex>+<base64(0x04 ‖ public key)>" (signed-note vkey, signature type 0x04).
"""
from __future__ import annotations

import base64
import struct

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from trust.checkpoint import SIG_PREFIX, b64decode, check_key_name, note_key_id, parse_checkpoint, verifier_key
from trust.errors import VerificationError

COSIGNATURE_V1 = b"\x04"          # signed-note signature type of an Ed25519 cosignature/v1
MAX_TIMESTAMP = (1 << 63) - 1


class CosignatureError(VerificationError):
    """A cosignature that does not verify (exit code 8)."""

    def __init__(self, message: str):
        super().__init__(3, "cosignature valid", message)
        self.args = (message,)


def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    return note_key_id(name, public_key, COSIGNATURE_V1)


def cosigner_vkey(name: str, public_key: bytes) -> str:
    """"<name>+<8 hex key ID>+<base64(0x04 ‖ public key)>"."""
    return verifier_key(name, public_key, COSIGNATURE_V1)


def parse_cosigner_vkey(vkey: str) -> tuple[str, bytes, Ed25519PublicKey]:
    """(name, key ID, public key) of a cosignature/v1 verifier key; ValueError if not one."""
    parts = vkey.split("+", 2) if isinstance(vkey, str) else []
    if len(parts) != 3 or len(parts[1]) != 8:
        raise ValueError("a verifier key is <name>+<8 hex key ID>+<base64 key>")
    name, key = parts[0], b64decode(parts[2])
    try:
        key_id = bytes.fromhex(parts[1])
    except ValueError:
        raise ValueError("the verifier key's ID is not 8 hex digits") from None
    if len(key) != 33 or key[:1] != COSIGNATURE_V1:
        raise ValueError("the verifier key is not a cosignature/v1 key (0x04 and 32 bytes)")
    if cosigner_key_id(name, key[1:]) != key_id:
        raise ValueError("the verifier key's ID does not match its name and key")
    return name, key_id, Ed25519PublicKey.from_public_bytes(key[1:])


def note_body(checkpoint_note: str) -> str:
    """The note text of a signed checkpoint note (or of a bare body), checked to be a checkpoint."""
    if not isinstance(checkpoint_note, str):
        raise ValueError("a checkpoint note is text")
    split = checkpoint_note.rfind("\n\n")   # a checkpoint body has no blank line
    body = checkpoint_note[:split + 1] if split >= 0 else checkpoint_note
    parse_checkpoint(body)
    return body


def signed_message(body: str, timestamp: int) -> bytes:
    if type(timestamp) is not int or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise ValueError(f"a cosignature timestamp is 0..2^63-1 seconds, not {timestamp!r}")
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


def cosignature_line(checkpoint_note: str, name: str, private_key: Ed25519PrivateKey, timestamp: int) -> str:
    """The cosignature line (ending in a newline) of `private_key` on the note's checkpoint at
    `timestamp` (POSIX seconds): append it to the note's signature lines."""
    body = note_body(checkpoint_note)
    public = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key_id = cosigner_key_id(name, public)
    signature = private_key.sign(signed_message(body, timestamp))
    raw = key_id + struct.pack(">Q", timestamp) + signature
    return f"{SIG_PREFIX}{name} {base64.b64encode(raw).decode('ascii')}\n"


def parse_cosignature_line(line: str) -> tuple[str, bytes, int, bytes]:
    """(name, key ID, timestamp, signature) of a cosignature/v1 line (with or without its newline)."""
    if not isinstance(line, str):
        raise ValueError("a cosignature line is text")
    text = line[:-1] if line.endswith("\n") else line
    if "\n" in text or not text.startswith(SIG_PREFIX):
        raise ValueError("a cosignature is one line starting with an em dash and a space")
    name, _, encoded = text[len(SIG_PREFIX):].partition(" ")
    check_key_name(name)
    raw = b64decode(encoded)
    if len(raw) != 4 + 8 + 64:
        raise ValueError(f"a cosignature/v1 is a key ID, a timestamp and a signature (76 bytes), not {len(raw)}")
    (timestamp,) = struct.unpack(">Q", raw[4:12])
    if timestamp > MAX_TIMESTAMP:
        raise ValueError("the cosignature's timestamp exceeds 2^63-1")
    return name, raw[:4], timestamp, raw[12:]


def verify_cosignature(checkpoint_note: str, line: str, vkey: str) -> int:
    """The timestamp of `line`, a cosignature/v1 by `vkey`'s key on the note's checkpoint;
    CosignatureError if it is by another key or does not verify (ValueError: malformed input)."""
    name, key_id, public = parse_cosigner_vkey(vkey)
    body = note_body(checkpoint_note)
    signer, got_id, timestamp, signature = parse_cosignature_line(line)
    if signer != name or got_id != key_id:
        raise CosignatureError(f"联署不是该见证密钥所签 (cosignature by another key): {signer} "
                               f"{got_id.hex()}, expected {name} {key_id.hex()}")
    try:
        public.verify(signature, signed_message(body, timestamp))
    except InvalidSignature:
        first = body.split("\n", 1)[0]
        raise CosignatureError(f"联署验证失败 (cosignature does not verify): {name} on checkpoint "
                               f"{first!r} at time {timestamp}: the checkpoint or the time was altered") from None
    return timestamp
