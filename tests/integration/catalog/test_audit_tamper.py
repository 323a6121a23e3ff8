"""Every field of an audit entry is covered by its hash: altering any one of them, on SQLite and
on PostgreSQL, makes the chain fail verification at that entry. The fields are listed here by
hand (not taken from catalog/serving/audit.py), and checked against the table's own columns."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from catalog.serving import audit
from tests.integration.conftest import server_url

AT = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
# column -> a different value to put in its place (written by hand: a field left out of the
# hashed body is then caught below, whatever catalog/serving/audit.py's own key list says)
TAMPER = {
    "at": AT + timedelta(minutes=5),
    "department": "someone-else",
    "purpose": "case:cover-up-1",
    "action": "status",
    "holder": "91110000600037341L",
    "datasets": ["another.dataset"],
    "fields": ["holder_name"],
    "subject": "0" * 32,
    "outcome": "refused:403",
    "detail": {"records": 0},
}
CHAIN_COLUMNS = {"id", "seq", "prev_hash", "entry_hash"}   # the chain itself, not its content


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request, tmp_path_factory):
    from catalog.db.engine import engine_for

    if request.param == "sqlite":
        yield engine_for(f"sqlite:///{tmp_path_factory.mktemp('tamper') / 'c.db'}")
        return
    from demo.sql_silos import create_database, drop_database

    server = server_url("postgresql")
    name = f"t_tamper_{uuid.uuid4().hex[:8]}"
    url = sa.make_url(create_database(server, name)).render_as_string(hide_password=False)
    try:
        e = engine_for(url)
        yield e
        e.dispose()
    finally:
        drop_database(server, name)


def _entries(engine, n: int = 5) -> None:
    for i in range(n):
        audit.append(engine, at=AT + timedelta(seconds=i), department=f"dept-{i}", purpose="DJ-SCJG-0003",
                     action="lookup", outcome="allowed", holder="91350100M000100Y43",
                     datasets=["business_licence.market_regulation"], fields=None,
                     subject=f"{i:032x}", detail={"records": i})


def test_the_hand_written_list_is_every_content_column(engine):
    columns = {c["name"] for c in sa.inspect(engine).get_columns("audit_log")}
    assert columns - CHAIN_COLUMNS == set(TAMPER)


@pytest.mark.parametrize("field", list(TAMPER))
def test_altering_any_field_fails_verification(engine, field):
    _entries(engine)
    from catalog.db.models import AuditEntry

    col = AuditEntry.__table__.c[field]
    with engine.connect() as c:
        head = c.scalar(sa.text("select seq from audit_head"))
    victim = head - 2
    assert audit.verify_chain(engine).ok
    with engine.begin() as c:
        was = c.scalar(sa.select(col).where(AuditEntry.__table__.c.seq == victim))
        assert was != TAMPER[field]
        c.execute(sa.update(AuditEntry.__table__).where(AuditEntry.__table__.c.seq == victim)
                  .values({field: TAMPER[field]}))
    try:
        r = audit.verify_chain(engine)
        assert (r.ok, r.first_bad_seq) == (False, victim), f"altering {field} went unnoticed: {r}"
        assert "altered" in r.problem
    finally:
        with engine.begin() as c:
            c.execute(sa.update(AuditEntry.__table__).where(AuditEntry.__table__.c.seq == victim)
                      .values({field: was}))
    assert audit.verify_chain(engine).ok, f"restoring {field} did not restore the chain"
