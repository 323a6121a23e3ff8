"""Private keys at rest: PKCS#8 EncryptedPrivateKeyInfo (RFC 5958) with PBES2 (RFC 8018),
PBKDF2-HMAC-SHA256 at 600,000 rounds (OWASP's figure for it) and AES-256-CBC.

cryptography 50 writes encrypted PKCS#8 only through BestAvailableEncryption, whose PBKDF2
runs 2,048 rounds, and offers a builder with a round count only for OpenSSH (bcrypt) and
PKCS#12 (whose MAC stays at 2,048 rounds: a cheap check of a guessed passphrase). So the few
DER bytes of the envelope are written here around cryptography's own PBKDF2 and AES; reading
stays with cryptography (load_pem_private_key), and `openssl pkey` reads the files too.
"""
from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

ROUNDS = 600_000
_PBES2 = bytes.fromhex("2a864886f70d01050d")          # 1.2.840.113549.1.5.13
_PBKDF2 = bytes.fromhex("2a864886f70d01050c")         # 1.2.840.113549.1.5.12
_HMAC_SHA256 = bytes.fromhex("2a864886f70d0209")      # 1.2.840.113549.2.9
_AES256_CBC = bytes.fromhex("60864801650304012a")     # 2.16.840.1.101.3.4.1.42
_SEQ, _INT, _OCTETS, _NULL, _OID = 0x30, 0x02, 0x04, 0x05, 0x06


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    width = (n.bit_length() + 7) // 8
    return bytes([tag, 0x80 | width]) + n.to_bytes(width, "big") + body


def encrypt(key, passphrase: bytes, rounds: int = ROUNDS) -> bytes:
    """The private key as an "ENCRYPTED PRIVATE KEY" PEM."""
    plain = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    salt, iv = os.urandom(16), os.urandom(16)
    secret = PBKDF2HMAC(hashes.SHA256(), 32, salt, rounds).derive(passphrase)
    padder = padding.PKCS7(128).padder()
    enc = Cipher(algorithms.AES(secret), modes.CBC(iv)).encryptor()
    data = enc.update(padder.update(plain) + padder.finalize()) + enc.finalize()
    count = rounds.to_bytes((rounds.bit_length() + 8) // 8, "big")          # a positive INTEGER
    prf = _der(_SEQ, _der(_OID, _HMAC_SHA256) + _der(_NULL, b""))
    kdf = _der(_SEQ, _der(_OID, _PBKDF2) + _der(_SEQ, _der(_OCTETS, salt) + _der(_INT, count) + prf))
    scheme = _der(_SEQ, _der(_OID, _AES256_CBC) + _der(_OCTETS, iv))
    der = _der(_SEQ, _der(_SEQ, _der(_OID, _PBES2) + _der(_SEQ, kdf + scheme)) + _der(_OCTETS, data))
    b64 = base64.b64encode(der).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return ("-----BEGIN ENCRYPTED PRIVATE KEY-----\n" + "\n".join(lines)
            + "\n-----END ENCRYPTED PRIVATE KEY-----\n").encode()


def _children(der: bytes, at: int, end: int):
    """(tag, body start, body end) of each TLV in der[at:end]."""
    while at < end:
        tag, n = der[at], der[at + 1]
        at += 2
        if n & 0x80:
            width = n & 0x7F
            n = int.from_bytes(der[at:at + width], "big")
            at += width
        yield tag, at, at + n
        at += n


def rounds_of(pem: bytes) -> int | None:
    """The PBKDF2-HMAC-SHA256 round count of an encrypted PKCS#8 PEM; None for any other
    protection (then it is not current and is re-encrypted)."""
    try:
        body = [line for line in pem.strip().splitlines() if not line.startswith(b"-----")]
        der = base64.b64decode(b"".join(body))
        [(_, a, b)] = list(_children(der, 0, len(der)))
        (_, a, b), _ = list(_children(der, a, b))                       # encryptionAlgorithm
        (_, oa, ob), (_, a, b) = list(_children(der, a, b))             # PBES2, its parameters
        (_, a, b), _ = list(_children(der, a, b))                       # keyDerivationFunc
        (_, ka, kb), (_, a, b) = list(_children(der, a, b))             # PBKDF2, its parameters
        params = list(_children(der, a, b))                              # salt, rounds, [length], prf
        (_, ia, ib), (prf_tag, pa, pb) = params[1], params[-1]
        if prf_tag != _SEQ:                                              # no prf: HMAC-SHA1
            return None
        (_, ha, hb), *_ = list(_children(der, pa, pb))
        if der[oa:ob] != _PBES2 or der[ka:kb] != _PBKDF2 or der[ha:hb] != _HMAC_SHA256:
            return None
        return int.from_bytes(der[ia:ib], "big")
    except (ValueError, IndexError):
        return None
