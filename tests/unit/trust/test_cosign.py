"""C2SP tlog-cosignature v1 (trust/cosign.py) and KeyStore.cosign / cosigner_vkey."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from catalog.signing.keys import KeyStore
from trust import checkpoint, cosign

pytestmark = pytest.mark.federation
PASS = b"correct horse battery staple"
ORIGIN = "district.example/business_licence.smr"
WITNESS = "province.example"
NOW = dt.datetime(2026, 11, 21, 20, 0, 0, tzinfo=dt.UTC)


@pytest.fixture
def note(tmp_path):
    origin = KeyStore(tmp_path / "district", PASS)
    origin.create()
    body = checkpoint.checkpoint_body(ORIGIN, 7, b"\x11" * 32, ["map 0123"])
    return origin.sign_note(body, ORIGIN)


@pytest.fixture
def witness(tmp_path):
    keys = KeyStore(tmp_path / "province", PASS)
    keys.create()
    return keys


def test_round_trip_with_a_keystore(note, witness):
    line, kid = witness.cosign(note, WITNESS, NOW)
    assert kid == witness.signer().kid and line.startswith(f"— {WITNESS} ") and line.endswith("\n")
    vkey = witness.cosigner_vkey(WITNESS)
    assert cosign.verify_cosignature(note, line, vkey) == int(NOW.timestamp())
    assert cosign.verify_cosignature(note + line, line, vkey) == int(NOW.timestamp())   # appended: same body
    # the cosigned note is still a valid signed note for the origin's own key (other lines ignored)
    name, key_id, public = cosign.parse_cosigner_vkey(vkey)
    raw = public.public_bytes_raw()
    assert key_id == hashlib.sha256(WITNESS.encode() + b"\n\x04" + raw).digest()[:4]
    assert vkey.split("+", 2)[2] == base64.b64encode(b"\x04" + raw).decode()
    assert key_id != checkpoint.note_key_id(WITNESS, raw)        # 0x04, not a plain note key (0x01)


def test_a_tampered_checkpoint_or_time_fails(note, witness):
    line, _ = witness.cosign(note, WITNESS, NOW)
    vkey = witness.cosigner_vkey(WITNESS)
    other = note.replace("\n7\n", "\n8\n", 1)
    with pytest.raises(cosign.CosignatureError, match=r"^联署验证失败 \(cosignature does not verify\)") as exc:
        cosign.verify_cosignature(other, line, vkey)
    assert exc.value.exit_code == 8
    prefix, encoded = line.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(encoded))
    raw[11] ^= 1                                                  # the timestamp's last byte
    with pytest.raises(cosign.CosignatureError, match="does not verify"):
        cosign.verify_cosignature(note, f"{prefix} {base64.b64encode(bytes(raw)).decode()}\n", vkey)
    extended = note.replace("map 0123\n", "map 0124\n")           # extension lines are signed too
    with pytest.raises(cosign.CosignatureError):
        cosign.verify_cosignature(extended, line, vkey)


def test_another_key_or_name_is_refused(note, witness, tmp_path):
    line, _ = witness.cosign(note, WITNESS, NOW)
    stranger = KeyStore(tmp_path / "stranger", PASS)
    stranger.create()
    with pytest.raises(cosign.CosignatureError, match="cosignature by another key"):
        cosign.verify_cosignature(note, line, stranger.cosigner_vkey(WITNESS))
    with pytest.raises(cosign.CosignatureError, match="cosignature by another key"):
        cosign.verify_cosignature(note, line, witness.cosigner_vkey("city.example"))
    with pytest.raises(ValueError, match="not a cosignature/v1 key"):
        cosign.verify_cosignature(note, line, witness.note_verifier_key(WITNESS))


def test_the_signed_message_is_the_spec_one(note):
    private = Ed25519PrivateKey.generate()
    line = cosign.cosignature_line(note, WITNESS, private, 1679315147)
    raw = base64.b64decode(line.rstrip("\n").rsplit(" ", 1)[1])
    body = note[:note.rfind("\n\n") + 1]
    message = f"cosignature/v1\ntime 1679315147\n{body}".encode()
    private.public_key().verify(raw[12:], message)                # raises if not this message
    assert raw[4:12] == (1679315147).to_bytes(8, "big")
    with pytest.raises(ValueError):
        cosign.cosignature_line(note, WITNESS, private, -1)
    with pytest.raises(ValueError):
        cosign.cosignature_line("not a checkpoint\n", WITNESS, private, 1)


def test_the_spec_example_line_parses():
    """c2sp.org/tlog-cosignature's example: its cosignature line carries the timestamp of its
    example signed message ("time 1679315147"); the spec gives no public key to verify it."""
    line = ("— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZC"
            "B9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==")
    name, key_id, timestamp, signature = cosign.parse_cosignature_line(line)
    assert (name, key_id.hex(), timestamp, len(signature)) == ("witness.example.com/w1", "8d66cf3f", 1679315147, 64)
