"""Signed checkpoints of the audit chain: whoever holds one can prove the log only grew. A tail
rewritten together with the head row verifies on its own, but not against a checkpoint taken
before the rewrite (exit 8)."""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from catalog.serving import audit
from cli import main as cli
from tests.conftest import make_signing_key


@pytest.fixture(autouse=True)
def _signing_key(home):
    make_signing_key()          # checkpoints are signed with the exchange's key: it must exist


def _admin(n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        assert cli(["departments", "add", f"dept-{i}", f"Department {i}"]) == 0


def _checkpoint(capsys, path) -> dict:
    capsys.readouterr()
    assert cli(["audit-checkpoint", "-o", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert json.loads(path.read_text()) == doc
    return doc


def _rewrite_from(engine, seq: int, department: str) -> None:
    """What someone with write access to the database can do: alter an entry and re-chain every
    entry after it and the head, with the published algorithm."""
    log, head = audit._log, audit._head
    cols = [log.c[k] for k in ("seq", *audit.BODY_KEYS)]
    with engine.begin() as c:
        prev = c.scalar(sa.select(log.c.entry_hash).where(log.c.seq == seq - 1)) or audit.GENESIS
        for r in c.execute(sa.select(*cols).where(log.c.seq >= seq).order_by(log.c.seq)).mappings().all():
            r = dict(r)
            if r["seq"] == seq:
                r["department"] = department
            h = audit.entry_hash(r["seq"], prev, audit.body_bytes(r))
            c.execute(sa.update(log).where(log.c.seq == r["seq"])
                      .values(department=r["department"], prev_hash=prev, entry_hash=h))
            prev = h
        c.execute(sa.update(head).values(hash=prev))


def test_a_rewritten_tail_fails_against_a_checkpoint_held_from_before(home, tmp_path, capsys):
    from cli import catalog

    engine = catalog().engine
    _admin(3)
    first = _checkpoint(capsys, tmp_path / "cp1.json")
    assert (first["size"], first["format"]) == (3, "exchange-audit-checkpoint/1")
    _admin(2, 3)
    second = _checkpoint(capsys, tmp_path / "cp2.json")
    assert second["size"] == 5
    # the log grew: the first checkpoint is extended, the second verifies too
    assert cli(["audit-verify", "--checkpoint", str(tmp_path / "cp1.json"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["checkpoints_verified"] == 2 and report["held_verified"] == 1
    assert report["newest_checkpoint"]["size"] == 5

    _rewrite_from(engine, 2, "nobody-was-here")
    assert audit.verify_chain(engine).ok              # the chain alone cannot tell
    assert cli(["audit-verify"]) == 8                 # the stored checkpoints can
    assert "rewritten below a published checkpoint" in capsys.readouterr().err
    with engine.begin() as c:                         # ... unless they are deleted as well
        c.execute(sa.text("delete from audit_checkpoints"))
    assert cli(["audit-verify"]) == 0
    capsys.readouterr()
    # a checkpoint held outside the exchange still catches it
    assert cli(["audit-verify", "--checkpoint", str(tmp_path / "cp1.json")]) == 8
    assert "rewritten below a published checkpoint" in capsys.readouterr().err


def test_a_truncated_log_and_a_forged_checkpoint_fail(home, tmp_path, capsys):
    from cli import catalog

    engine = catalog().engine
    _admin(4)
    doc = _checkpoint(capsys, tmp_path / "cp.json")
    with engine.begin() as c:                         # drop the last two entries, move the head back
        h = c.scalar(sa.text("select entry_hash from audit_log where seq = 2"))
        c.execute(sa.text("delete from audit_log where seq > 2"))
        c.execute(sa.text("update audit_head set seq = 2, hash = :h"), {"h": h})
        c.execute(sa.text("delete from audit_checkpoints"))
    assert audit.verify_chain(engine).ok
    assert cli(["audit-verify", "--checkpoint", str(tmp_path / "cp.json")]) == 8
    assert "ahead of the chain" in capsys.readouterr().err
    # a checkpoint whose signed payload was altered
    head, payload, sig = doc["signed"].split(".")
    forged = tmp_path / "forged.json"
    import base64
    body = json.loads(base64.urlsafe_b64decode(payload + "=="))
    body["size"] = 2
    payload = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    forged.write_text(json.dumps({**doc, "size": 2, "signed": f"{head}.{payload}.{sig}"}))
    assert cli(["audit-verify", "--checkpoint", str(forged)]) == 8
    assert "step 1 (checkpoint signature)" in capsys.readouterr().err


def test_no_checkpoint_is_signed_over_a_broken_chain(home, tmp_path, capsys):
    from cli import catalog

    _admin(3)
    with catalog().engine.begin() as c:
        c.execute(sa.text("update audit_log set department = 'x' where seq = 2"))
    assert cli(["audit-checkpoint"]) == 8
    assert "no checkpoint was signed" in capsys.readouterr().err
    with catalog().engine.connect() as c:
        assert c.scalar(sa.text("select count(*) from audit_checkpoints")) == 0


def test_checkpoints_are_published_like_the_jwks(home, tmp_path, capsys):
    """GET /v1/audit/checkpoints needs no key and leaves no entry; what it serves verifies with
    the published JWKS and is the checkpoint the CLI made."""
    from api.app import create_app
    from base.settings import get_settings
    from catalog.serving.audit_checkpoints import verify_signed

    _admin(2)
    made = [_checkpoint(capsys, tmp_path / f"cp{i}.json") for i in range(3)]
    app = create_app(get_settings(), cache_ttl=0)
    engine = app.state.consumer.engine
    before = audit.verify_chain(engine).size
    client = TestClient(app)
    jwks = client.get("/.well-known/jwks.json").json()
    page = client.get("/v1/audit/checkpoints", params={"limit": 2}).json()
    assert page["more"] and [c["signed"] for c in page["checkpoints"]] == [m["signed"] for m in made[::-1][:2]]
    rest = client.get("/v1/audit/checkpoints", params={"before": page["next_before"]}).json()
    assert not rest["more"] and [c["signed"] for c in rest["checkpoints"]] == [made[0]["signed"]]
    for c in page["checkpoints"]:
        p = verify_signed(c["signed"], jwks)
        assert (p["size"], p["head_hash"], p["issued_at"]) == (c["size"], c["head_hash"], c["issued_at"])
    assert audit.verify_chain(engine).size == before      # public: not audited


def test_checkpoints_go_on_after_their_key_is_compromised(home, tmp_path, capsys):
    """A compromised key leaves the JWKS: its checkpoints are no longer counted (a note says
    so), one held is refused, and the next checkpoint is signed by the new key."""
    _admin(2)
    old = _checkpoint(capsys, tmp_path / "old.json")
    assert cli(["keys", "compromise", "--", old["kid"]]) == 0   # a kid may begin with "-"
    _admin(1, 2)
    new = _checkpoint(capsys, tmp_path / "new.json")
    assert new["kid"] != old["kid"] and new["size"] == old["size"] + 1
    assert cli(["audit-verify", "--checkpoint", str(tmp_path / "new.json"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["checkpoints_verified"] == 1 and "not in the JWKS were not counted" in report["problem"]
    assert cli(["audit-verify", "--checkpoint", str(tmp_path / "old.json")]) == 8
    assert "not signed by a key of the JWKS" in capsys.readouterr().err
