"""Checkpoints (C2SP tlog-checkpoint) and their Ed25519 signed notes (C2SP signed-note).

A checkpoint body is the note text: origin, tree size in decimal, the root hash in standard
base64 (RFC 4648 §4), then optional extension lines, each line ending in a newline
(tlog-checkpoint, "Note text"). A signed note is the text, a blank line and signature lines
"— <key name> <base64(key ID ‖ signature)>" (signed-note, "Format"); an Ed25519 key's ID is
SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public key)[:4] ("Ed25519 signatures"). A verifier key is
"<name>+<key ID, 8 hex>+<base64(0x01 ‖ public key)>", as golang.org/x/mod/sumdb/note writes it.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ED25519 = b"\x01"          # signed-note signature type of Ed25519
SIG_PREFIX = "\u2014 "     # em dash, space
MAX_SIGNATURES = 100       # signed-note: a limit is applied, at least 16 accepted
_SIZE = re.compile(r"0|[1-9][0-9]*", re.ASCII)
_KEY_ID = re.compile(r"[0-9a-fA-F]{8}", re.ASCII)


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()


def b64decode(text: str) -> bytes:
    """Standard base64 (RFC 4648 §4), strictly: padded, canonical, no other characters."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise ValueError(f"{text[:40]!r} is not standard base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError(f"{text[:40]!r} is not canonical standard base64")
    return raw


def _check_chars(text: str, what: str) -> None:
    """signed-note: valid UTF-8 and no ASCII control characters other than newline."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"the {what} is not valid UTF-8") from None
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise ValueError(f"the {what} holds an ASCII control character")


def _check_line(line: str, what: str) -> None:
    if not line or "\n" in line:
        raise ValueError(f"the {what} is one non-empty line")
    _check_chars(line, what)


def check_key_name(name: str) -> None:
    """signed-note: key names are non-empty, without Unicode spaces or plus (U+002B)."""
    if not isinstance(name, str) or not name or "+" in name or any(c.isspace() for c in name):
        raise ValueError(f"{name!r} is not a key name (non-empty, no spaces, no '+')")
    _check_chars(name, "key name")


def checkpoint_body(origin: str, size: int, root: bytes, extensions: list[str]) -> str:
    """The note text of a checkpoint (tlog-checkpoint, "Note text")."""
    _check_line(origin, "origin")
    if type(size) is not int or not 0 <= size < 1 << 64:
        raise ValueError(f"a tree size is a uint64, not {size!r}")
    if not isinstance(root, bytes) or len(root) != 32:
        raise ValueError("a root hash is 32 bytes")
    for line in extensions:
        _check_line(line, "extension line")
    lines = [origin, str(size), base64.b64encode(root).decode("ascii"), *extensions]
    return "".join(line + "\n" for line in lines)


def parse_checkpoint(body: str) -> Checkpoint:
    """A checkpoint's note text, strictly (the inverse of checkpoint_body); ValueError if not one."""
    if not isinstance(body, str) or not body.endswith("\n"):
        raise ValueError("a checkpoint body is lines each ending in a newline")
    _check_chars(body, "checkpoint")
    lines = body[:-1].split("\n")
    if len(lines) < 3 or not all(lines):
        raise ValueError("a checkpoint body is at least three non-empty lines")
    origin, size, root, *extensions = lines
    if not _SIZE.fullmatch(size) or int(size) >= 1 << 64:
        raise ValueError(f"tree size {size[:40]!r} is not a decimal uint64 without leading zeroes")
    raw = b64decode(root)
    if len(raw) != 32:
        raise ValueError(f"the root hash is {len(raw)} bytes, not 32")
    return Checkpoint(origin, int(size), raw, tuple(extensions))


def note_key_id(name: str, public_key: bytes, sig_type: bytes = ED25519) -> bytes:
    """signed-note: SHA-256(key name ‖ 0x0A ‖ signature type ‖ 32-byte Ed25519 public key)[:4]
    (type 0x01 a note key; 0x04 a cosignature/v1 key, trust/cosign.py)."""
    check_key_name(name)
    if not isinstance(public_key, bytes) or len(public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return hashlib.sha256(name.encode("utf-8") + b"\n" + sig_type + public_key).digest()[:4]


def verifier_key(name: str, public_key: bytes, sig_type: bytes = ED25519) -> str:
    """"<name>+<8 hex key ID>+<base64(signature type ‖ public key)>"."""
    key_id = note_key_id(name, public_key, sig_type)
    return f"{name}+{key_id.hex()}+{base64.b64encode(sig_type + public_key).decode('ascii')}"


def parse_verifier_key(vkey: str) -> tuple[str, bytes, Ed25519PublicKey]:
    """(name, key ID, public key) of an Ed25519 verifier key; ValueError if not one."""
    parts = vkey.split("+", 2) if isinstance(vkey, str) else []
    if len(parts) != 3 or not _KEY_ID.fullmatch(parts[1]):
        raise ValueError("a verifier key is <name>+<8 hex key ID>+<base64 key>")
    name, key_id, key = parts[0], bytes.fromhex(parts[1]), b64decode(parts[2])
    if len(key) != 33 or key[:1] != ED25519:
        raise ValueError("the verifier key is not an Ed25519 key (0x01 and 32 bytes)")
    if note_key_id(name, key[1:]) != key_id:
        raise ValueError("the verifier key's ID does not match its name and key")
    return name, key_id, Ed25519PublicKey.from_public_bytes(key[1:])


def note_signature_line(name: str, key_id: bytes, signature: bytes) -> str:
    return f"{SIG_PREFIX}{name} {base64.b64encode(key_id + signature).decode('ascii')}\n"


def verify_note(note: str, verifier_key: str) -> str:
    """The text of a signed note signed by `verifier_key`'s key. Signatures by other keys are
    ignored (signed-note, "Signatures"); ValueError if the note is malformed, if a signature by
    this key fails, or if none is there."""
    name, key_id, public = parse_verifier_key(verifier_key)
    if not isinstance(note, str):
        raise ValueError("a signed note is text")
    _check_chars(note, "note")
    split = note.rfind("\n\n")   # the text ends at the note's last blank line
    if split < 0:
        raise ValueError("the note has no blank line before its signatures")
    text, sigs = note[:split + 1], note[split + 2:]
    if not sigs.endswith("\n"):
        raise ValueError("the note's signature lines do not end in a newline")
    lines = sigs[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise ValueError(f"the note has more than {MAX_SIGNATURES} signatures")
    verified = False
    for line in lines:
        if not line.startswith(SIG_PREFIX):
            raise ValueError("a signature line does not start with an em dash and a space")
        signer, _, encoded = line[len(SIG_PREFIX):].partition(" ")
        check_key_name(signer)
        raw = b64decode(encoded)
        if len(raw) < 5:
            raise ValueError("a note signature is a key ID and at least one byte")
        if signer != name or raw[:4] != key_id:
            continue   # another key's
        try:
            public.verify(raw[4:], text.encode("utf-8"))
        except InvalidSignature:
            raise ValueError(f"the signature by {name} does not verify") from None
        verified = True
    if not verified:
        raise ValueError(f"the note has no signature by {name} ({key_id.hex()})")
    return text
