"""The audit chain: canonical entry bytes, group appends, and every kind of tampering."""
from __future__ import annotations

import rfc8785
import sqlalchemy as sa

from catalog.serving import audit


def test_entry_bytes_are_rfc8785():
    row = audit.entry(department="d-1", purpose="case:A-1", action="lookup", outcome="allowed",
                      holder="91X", datasets=["b", "a"], fields=None, subject='营业执照\n"\x01\u2028',
                      detail={"records": 3, "reason": "é"})
    body = {k: audit._at_text(row["at"]) if k == "at" else row[k] for k in audit.BODY_KEYS}
    assert row["_body"] == rfc8785.dumps(body)


def test_group_append_and_tampering(tmp_path):
    from catalog.db.engine import engine_for

    engine = engine_for(f"sqlite:///{tmp_path / 'c.db'}")
    rows = [audit.entry(department=f"d{i}", purpose="case:X-1", action="lookup", outcome="allowed")
            for i in range(6)]
    assert audit.append_many(engine, rows[:4]) == [1, 2, 3, 4]
    assert audit.append(engine, **{k: rows[4][k] for k in ("department", "purpose", "action", "outcome")}) == 5
    assert audit.verify_chain(engine).ok and audit.verify_chain(engine).entries == 5
    with engine.begin() as c:   # swap two entries' contents
        a, b = c.execute(sa.text("select department from audit_log where seq in (2, 3) order by seq")).scalars()
        c.execute(sa.text("update audit_log set department = :d where seq = 2"), {"d": b})
        c.execute(sa.text("update audit_log set department = :d where seq = 3"), {"d": a})
    r = audit.verify_chain(engine)
    assert (r.ok, r.first_bad_seq) == (False, 2)
    with engine.begin() as c:
        c.execute(sa.text("update audit_log set department = :d where seq = 2"), {"d": a})
        c.execute(sa.text("update audit_log set department = :d where seq = 3"), {"d": b})
        c.execute(sa.text("delete from audit_log where seq = 5"))
    r = audit.verify_chain(engine)
    assert (r.ok, r.first_bad_seq) == (False, 5) and "deleted from the end" in r.problem


def test_entries_appended_while_the_chain_is_checked_are_left_for_the_next_check(tmp_path):
    """The walk stops at the head it read first: an API writing meanwhile is no false alarm."""
    from catalog.db.engine import engine_for

    engine = engine_for(f"sqlite:///{tmp_path / 'c.db'}")
    kw = {"purpose": "case:X-1", "action": "lookup", "outcome": "allowed"}
    for i in range(3):
        audit.append(engine, department=f"d{i}", **kw)
    appended = []

    def write_meanwhile(done, total):
        if len(appended) < 3:
            appended.append(audit.append(engine, department=f"late{done}", **kw))

    r = audit.verify_chain(engine, batch=1, progress=write_meanwhile)
    assert appended == [4, 5, 6] and (r.ok, r.entries) == (True, 3), r
    r = audit.verify_chain(engine)
    assert (r.ok, r.entries) == (True, 6)
    with engine.begin() as c:        # still caught: the newest entry altered after the head was read
        c.execute(sa.text("update audit_log set department = 'x' where seq = 6"))
    r = audit.verify_chain(engine)
    assert (r.ok, r.first_bad_seq) == (False, 6)
