"""docs/verification.md lets an outsider verify alone: its "Verify it yourself" section, run as
written (the program and its command line) with PyJWT, a JOSE library the exchange does not use,
on a bundle and the JWKS of a published dataset, from the API paths and the file the doc names."""
from __future__ import annotations

import base64
import copy
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

DOC = Path(__file__).resolve().parents[3] / "docs" / "verification.md"
DATASET, ITEM = "business_licence.market_regulation", "DJ-SCJG-0003"


def _section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def recipe() -> tuple[str, list[str]]:
    """The section's Python program and the command line that runs it."""
    section = _section("Verify it yourself")
    programs = re.findall(r"```python\n(.*?)```", section, re.S)
    [shell] = re.findall(r"```sh\n(.*?)```", section, re.S)
    [command] = [line for line in shell.splitlines() if line.startswith("python ")]
    assert len(programs) == 1 and "verify_record.py" in command
    return programs[0], shlex.split(command)


@pytest.fixture(scope="module")
def material(published, tmp_path_factory):
    """bundle.json and jwks.json as the doc says to get them (API), the JWKS file the exchange
    writes, and a second record's id."""
    from api.app import create_app

    app = create_app(published, rate=10_000, burst=10_000, cache_ttl=0)
    access = app.state.consumer.access
    access.add_department("doc-reader", "Reader of the verification doc")
    h = {"Authorization": f"Bearer {access.issue_credential('doc-reader')['key']}"}
    client = TestClient(app)
    with app.state.consumer.engine.connect() as c:
        a, b = c.execute(sa.text("select record_id from records where status = 'valid' "
                                 "order by leaf_index limit 2 offset 5")).scalars().all()
    r = client.get(f"/v1/records/{a}/bundle", params={"purpose": ITEM}, headers=h)
    assert r.status_code == 200 and r.json()["verifiable"], r.text
    jwks = client.get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    assert json.loads(jwks.content) == json.loads((published.keys_dir / "jwks.json").read_text())
    return {"bundle": r.json(), "jwks": jwks.content, "jwks_file": published.keys_dir / "jwks.json",
            "other": b}


def run(tmp_path: Path, bundle: dict, jwks: bytes) -> subprocess.CompletedProcess:
    program, command = recipe()
    work = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
    work.mkdir()
    (work / command[1]).write_text(program, encoding="utf-8")
    (work / command[2]).write_text(json.dumps(bundle, ensure_ascii=False), encoding="utf-8")
    (work / command[3]).write_bytes(jwks)
    return subprocess.run([sys.executable, *command[1:]], cwd=work, capture_output=True, text=True, timeout=60)


def test_the_recipe_verifies_a_published_bundle(material, tmp_path):
    bundle = material["bundle"]
    for jwks in (material["jwks"], material["jwks_file"].read_bytes()):
        done = run(tmp_path, bundle, jwks)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0] == (f"verified: the signed record {bundle['record']['record_id']} (licence "
                            f"{bundle['record']['licence_number']}) is leaf {bundle['leaf_index']} of "
                            f"{DATASET} version 1")
        assert lines[1] == ("unsigned, not checked: status, status_since, status_reason, disputed, dispute, "
                            "disputes, disclosure, verifiable, unsigned")


def _resigned(sth: str) -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    h, p, _ = sth.split(".")
    sig = Ed25519PrivateKey.generate().sign(f"{h}.{p}".encode())
    return f"{h}.{p}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"


def _flipped(sth: str) -> str:
    h, p, s = sth.split(".")
    raw = bytearray(base64.urlsafe_b64decode(s + "=="))
    raw[0] ^= 0x80
    return f"{h}.{p}.{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"


@pytest.mark.parametrize("tamper, says", [
    (lambda b, other: b.update(record_id=other), "the bundle says record_id"),
    (lambda b, other: b.update(version=2), "the bundle says version 2"),
    (lambda b, other: b["record"].update(holder_name="李四"), "not at leaf_index of the signed tree"),
    (lambda b, other: b.update(leaf_index=b["leaf_index"] + 1), "not at leaf_index of the signed tree"),
    (lambda b, other: b.update(signed_tree_head=_flipped(b["signed_tree_head"])), "signature is not valid"),
    (lambda b, other: b.update(signed_tree_head=_resigned(b["signed_tree_head"])), "signature is not valid"),
])
def test_the_recipe_refuses_a_tampered_bundle(material, tmp_path, tamper, says):
    bundle = copy.deepcopy(material["bundle"])
    tamper(bundle, material["other"])
    done = run(tmp_path, bundle, material["jwks"])
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("NOT verified: ") and says in done.stderr, done.stderr


def test_the_recipe_refuses_a_key_it_does_not_know(material, tmp_path):
    from catalog.signing.keys import KeyStore

    other = KeyStore(tmp_path / "other-keys", b"another passphrase here")
    other.create()
    done = run(tmp_path, material["bundle"], json.dumps(other.jwks()).encode())
    assert done.returncode == 1 and "NOT verified: no key" in done.stderr, done.stderr
