"""The access matrix: sharing attribute x grant x purpose x field set, over HTTP, each request
audited; the audit chain catches tampering."""
from __future__ import annotations

import itertools
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from catalog.serving import audit
from catalog.serving.access import now_utc
from trust.verify import read_key_status, verify_bundle

DATASET = "business_licence.market_regulation"
ITEM, OTHER_ITEM, CASE = "DJ-SCJG-0003", "GG-JY-0001", "case:2026-SZ-000123"
# a partial grant that leaves out a summary field (valid_to) and names a non-summary one: the
# holder lookup must drop valid_to, which it returns for full grants
SOME = ["address", "holder_name", "licence_number"]
LEFT_OUT = "valid_to"
GRANTS = {   # name -> (purposes, fields, expired, revoked)
    "none": None,
    "all_fields": ([ITEM], None, False, False),
    "some_fields": ([ITEM], SOME, False, False),
    "other_purpose": ([OTHER_ITEM], None, False, False),
    "any_case": (["case:*"], None, False, False),
    "expired": ([ITEM], None, True, False),
    "revoked": ([ITEM], None, False, True),
}
PURPOSES = {"item": ITEM, "case": CASE, "missing": None, "unknown": "XX-YY-9999"}


@pytest.fixture(scope="module")
def env(api_settings):
    from api.app import create_app

    published = api_settings
    app = create_app(published, rate=10_000, burst=10_000, cache_ttl=0)
    consumer = app.state.consumer
    engine = consumer.engine
    with engine.connect() as c:
        rid, holder = c.execute(sa.text("select record_id, holder_key from records where status='valid' "
                                        "order by leaf_index limit 1")).one()
    return app, consumer, engine, rid, holder, published


def expected(sharing, grant, purpose):
    """(http status, disclosure) by the rules in docs/consumer-api.md."""
    if purpose in ("missing", "unknown"):
        return (422 if purpose == "missing" else 400), None
    if sharing == "not_shared":
        return 403, None
    if sharing == "unconditional":
        return 200, "full"
    g = GRANTS[grant]
    if g is None or g[2] or g[3]:
        return 403, None
    purposes, fields = g[0], g[1]
    if not (PURPOSES[purpose] in purposes or (purpose == "case" and "case:*" in purposes)):
        return 403, None
    return 200, "full" if fields is None else "partial"


def test_access_matrix(env):
    app, consumer, engine, rid, holder, settings = env
    jwks = json.loads(settings.jwks_path.read_text())
    key_status = read_key_status(settings.keys_dir / "key-status.jws")
    client = TestClient(app)
    access = consumer.access
    cases = list(itertools.product(("unconditional", "conditional", "not_shared"), GRANTS, PURPOSES))
    try:
        _matrix(client, access, engine, rid, holder, jwks, key_status, cases)
    finally:        # the dataset is shared with the other tests: restore it even on failure
        with engine.begin() as c:
            c.execute(sa.text("update datasets set sharing = 'unconditional' where id = :d"), {"d": DATASET})
        access.clear()
    assert audit.verify_chain(engine).ok


def _matrix(client, access, engine, rid, holder, jwks, key_status, cases):
    for i, (sharing, grant, purpose) in enumerate(cases):
        dept = f"dept-{i}"
        access.add_department(dept, f"Department {i}")
        key = access.issue_credential(dept)["key"]
        g = GRANTS[grant]
        if g is not None:
            gid = access.add_grant(dept, DATASET, g[0], g[1])
            if g[2]:
                with engine.begin() as c:
                    c.execute(sa.text("update grants set expires_at = :t where id = :i"),
                              {"t": now_utc() - timedelta(days=1), "i": gid})
            if g[3]:
                access.revoke_grant(gid)
        with engine.begin() as c:
            c.execute(sa.text("update datasets set sharing = :s where id = :d"), {"s": sharing, "d": DATASET})
        access.clear()
        params = {} if PURPOSES[purpose] is None else {"purpose": PURPOSES[purpose]}
        headers = {"Authorization": f"Bearer {key}"}
        want, disclosure = expected(sharing, grant, purpose)
        before = audit.verify_chain(engine).entries
        r = client.get(f"/v1/records/{rid}/bundle", params=params, headers=headers)
        where = f"{sharing} × {grant} × {purpose}"
        assert r.status_code == want, (where, r.text)
        assert audit.verify_chain(engine).entries == before + 1, where   # allowed or refused: audited
        if want != 200:
            assert r.headers["content-type"] == "application/problem+json", where
            body = r.json()
            assert body["status"] == want and "Traceback" not in body["detail"]
        else:
            b = r.json()
            assert b["disclosure"] == disclosure, where
            if disclosure == "full":
                assert b["verifiable"] is True
                verify_bundle(b, jwks, key_status)
            else:
                assert b["verifiable"] is False and "signed_tree_head" not in b
                assert set(b["record"]) == {*SOME, "record_id"}
                # status is withheld: the bundle's status (and since when) must not tell it
                assert "status" in b["withheld"] and "status" not in b and "status_since" not in b
                assert LEFT_OUT not in b["record"] and LEFT_OUT in b["withheld"], where
        # the holder lookup lists the record exactly when the bundle is allowed
        r = client.post("/v1/holders/records", params=params, headers=headers, json={"holder_id": holder.lower()})
        if purpose in ("missing", "unknown"):
            assert r.status_code == want
            continue
        assert r.status_code == 200, r.text
        listed = [x for x in r.json()["records"] if x["record_id"] == rid]
        assert bool(listed) == (want == 200), where
        if listed and disclosure == "partial":
            assert "licence_number" in listed[0] and "holder_name" in listed[0], where
            assert LEFT_OUT not in listed[0], (where, listed[0])
        elif listed:
            assert LEFT_OUT in listed[0], (where, listed[0])


def _since(engine, seq: int) -> list[tuple]:
    log = audit._log.c
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(sa.select(log.department, log.action, log.outcome, log.holder,
                                                      log.detail).where(log.seq > seq).order_by(log.seq))]


def _head(engine) -> int:
    with engine.connect() as c:
        return c.scalar(sa.text("select seq from audit_head"))


def test_partial_bundle_tells_no_withheld_field_through_its_status(env):
    """The bundle's status is made of the record's status and valid_to: it is given only when
    the grant covers both (an expired record's status_since is the day after its valid_to)."""
    app, consumer, engine, rid, holder, _ = env
    client = TestClient(app)
    access = consumer.access
    with engine.begin() as c:
        c.execute(sa.text("update datasets set sharing = 'conditional' where id = :d"), {"d": DATASET})
    try:
        for i, (fields, shown) in enumerate(((["licence_number", "status", "valid_to"], True),
                                            (["licence_number", "valid_to"], False),
                                            (["licence_number", "status"], False))):
            dept = f"partial-{i}"
            access.add_department(dept, f"Partial department {i}")
            access.add_grant(dept, DATASET, [ITEM], fields)
            h = {"Authorization": f"Bearer {access.issue_credential(dept)['key']}"}
            b = client.get(f"/v1/records/{rid}/bundle", params={"purpose": ITEM}, headers=h).json()
            assert b["disclosure"] == "partial", b
            assert ("status" in b, "status_since" in b) == (shown, shown), (fields, b)
            if shown:
                assert b["status"] == "valid" and b["status_since"]
            # the holder lookup and the status route tell the status on the same terms
            found = client.post("/v1/holders/records", params={"purpose": ITEM}, headers=h,
                                json={"holder_id": holder}).json()["records"]
            mine = [x for x in found if x["record_id"] == rid]
            assert len(mine) == 1 and ("status" in mine[0]) == shown, (fields, mine)
            st = client.get(f"/v1/records/{rid}/status", params={"purpose": ITEM}, headers=h)
            assert st.status_code == (200 if shown else 403), (fields, st.text)
            if not shown:
                assert "history" not in st.json() and "does not cover" in st.json()["detail"], st.json()
    finally:
        with engine.begin() as c:
            c.execute(sa.text("update datasets set sharing = 'unconditional' where id = :d"), {"d": DATASET})
        access.clear()


def test_unauthenticated_and_revoked_refused_and_audited(env):
    """Unauthenticated refusals are counted per client: the first written at once, the rest as
    one entry with their count when the window closes or the server stops."""
    app, consumer, engine, rid, holder, _ = env
    access = consumer.access
    access.add_department("revoker", "Revoked department")
    cred = access.issue_credential("revoker")
    access.revoke_credential(cred["key_id"])
    start = _head(engine)
    with TestClient(app, client=("192.0.2.7", 50000)) as client:     # its lifespan: stopped at the end
        r = client.get(f"/v1/records/{rid}/bundle", params={"purpose": ITEM})
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
        for _ in range(3):
            r = client.get(f"/v1/records/{rid}/bundle", params={"purpose": ITEM},
                           headers={"Authorization": f"Bearer {cred['key']}"})
            assert r.status_code == 401
        first = _since(engine, start)
    assert [e[:3] for e in first] == [("-", "bundle", "refused:401")]
    assert first[0][4]["count"] == 1 and first[0][4]["client"] == "192.0.2.7"
    rows = _since(engine, start)
    assert [e[:3] for e in rows] == [("-", "bundle", "refused:401"), ("-", "refusals", "refused:401")]
    summary = rows[1][4]
    assert summary["count"] == 3 and summary["actions"] == {"bundle": 3} and summary["client"] == "192.0.2.7"
    assert any(f"{cred['key_id']} is revoked" in reason for reason in summary["reasons"])
    assert audit.verify_chain(engine).ok


def test_unknown_paths_methods_not_allowed_and_large_bodies_are_audited(env):
    """Every /v1/ request leaves an entry, also those no route handles."""
    app, consumer, engine, rid, holder, _ = env
    access = consumer.access
    access.add_department("asker", "Asking department")
    h = {"Authorization": f"Bearer {access.issue_credential('asker')['key']}"}
    for i, (method, path, kw, status) in enumerate([
            ("GET", "/v1/no-such-thing", {}, 404),
            ("DELETE", "/v1/datasets", {}, 405),
            ("POST", "/v1/holders/records", {"content": b"x" * 20_000}, 413)]):
        start = _head(engine)
        r = TestClient(app, client=(f"198.51.100.{i}", 1)).request(method, path, params={"purpose": ITEM},
                                                                   headers=h, **kw)
        assert r.status_code == status, (path, r.text)
        rows = _since(engine, start)
        assert [e[2] for e in rows] == [f"refused:{status}"], (path, rows)
        assert rows[0][4]["path"] == path and rows[0][4]["client"] == f"198.51.100.{i}"
    assert audit.verify_chain(engine).ok


def test_refused_lookups_are_recorded_as_answered_and_name_the_holder(env):
    """A request that fails validation is recorded as the 422 it was answered with, under the
    route's action; refused lookups name the holder, so they are in the holder's access report."""
    app, consumer, engine, rid, holder, _ = env
    access = consumer.access
    access.add_department("asker-2", "Asking department")
    h = {"Authorization": f"Bearer {access.issue_credential('asker-2')['key']}"}
    access.add_department("auditor-2", "Auditor", role="auditor")
    ah = {"Authorization": f"Bearer {access.issue_credential('auditor-2')['key']}"}
    client = TestClient(app)
    start = _head(engine)
    r = client.post("/v1/holders/records", headers=h, json={"holder_id": holder})   # no purpose
    assert r.status_code == 422
    r = client.post("/v1/holders/records", params={"purpose": "XX-YY-9999"}, headers=h, json={"holder_id": holder})
    assert r.status_code == 400
    r = client.get("/v1/items", params={"purpose": ITEM}, headers=h)
    assert r.status_code == 200
    # the list of valid purposes is public metadata: no key or purpose needed, not audited; a
    # purpose given is checked (tests/integration/api/test_dcat_public.py)
    assert client.get("/v1/items", headers=h).json() == r.json() == client.get("/v1/items").json()
    assert client.get("/v1/items", params={"purpose": "XX-YY-9999"}, headers=h).status_code == 400
    assert client.get("/v1/datasets", params={"purpose": ITEM}).status_code == 401
    assert [e[:4] for e in _since(engine, start)] == [
        ("asker-2", "lookup", "refused:422", holder), ("asker-2", "lookup", "refused:400", holder),
        ("-", "catalogue", "refused:401", None)]
    r = client.post("/v1/holders/access-report", params={"purpose": "case:audit-2"}, headers=ah,
                    json={"holder_id": holder})
    seen = [(a["department"], a["action"], a["outcome"]) for a in r.json()["accesses"]]
    assert ("asker-2", "lookup", "refused:422") in seen and ("asker-2", "lookup", "refused:400") in seen
    assert audit.verify_chain(engine).ok


def test_materials_check_and_access_report(env):
    app, consumer, engine, rid, holder, _ = env
    client = TestClient(app)
    access = consumer.access
    access.add_department("lift-office", "Lift registration office")
    key = access.issue_credential("lift-office")["key"]
    h = {"Authorization": f"Bearer {key}"}
    r = client.post(f"/v1/items/{ITEM}/materials-check", params={"purpose": ITEM}, headers=h,
                    json={"holder_id": holder})
    assert r.status_code == 200, r.text
    answers = {m["material"]: m for m in r.json()["materials"]}
    assert answers["营业执照"]["answer"] == "held" and answers["营业执照"]["bundle"]["verifiable"]
    assert answers["安装监督检验报告"]["answer"] == "must_submit"
    assert answers["安全管理员证书"]["answer"] == "may_supply_later"
    # the access report is for auditors only, and lists the lookup above
    r = client.post("/v1/holders/access-report", params={"purpose": "case:audit-1"}, headers=h,
                    json={"holder_id": holder})
    assert r.status_code == 403
    access.add_department("inspectorate", "Inspectorate", role="auditor")
    ak = access.issue_credential("inspectorate")["key"]
    r = client.post("/v1/holders/access-report", params={"purpose": "case:audit-1"},
                    headers={"Authorization": f"Bearer {ak}"}, json={"holder_id": holder})
    assert r.status_code == 200
    report = r.json()
    seen = {(a["department"], a["action"], a["purpose"]) for a in report["accesses"]}
    assert ("lift-office", "materials", ITEM) in seen and ("lift-office", "access_report", "case:audit-1") in seen
    # a page at a time: `more` and the cursor to the next page
    pages, before = [], None
    while True:
        r = client.post("/v1/holders/access-report", headers={"Authorization": f"Bearer {ak}"},
                        params={"purpose": "case:audit-1", "limit": 2, **({"before": before} if before else {})},
                        json={"holder_id": holder})
        page = r.json()
        pages += [a["seq"] for a in page["accesses"]]
        assert len(page["accesses"]) <= 2 and page["more"] == (page["next_before"] is not None)
        if not page["more"]:
            break
        before = page["next_before"]
    assert pages[1:] == [a["seq"] for a in report["accesses"]] and not report["more"]


def test_rate_limit_per_department(published):
    from api.app import create_app

    app = create_app(published, rate=1, burst=3, cache_ttl=0)
    access = app.state.consumer.access
    access.add_department("busy", "Busy department")
    h = {"Authorization": f"Bearer {access.issue_credential('busy')['key']}"}
    codes = [TestClient(app).get("/v1/datasets", params={"purpose": ITEM}, headers=h).status_code
             for _ in range(5)]
    assert codes[:3] == [200] * 3 and codes[3] == 429
    anon = [TestClient(app).get("/v1/datasets", params={"purpose": ITEM}).status_code for _ in range(5)]
    assert anon[:3] == [401] * 3 and anon[3] == 429      # unauthenticated callers are limited too


def test_tampering_with_the_audit_log_is_detected(published, tmp_path):
    import sqlite3

    from catalog.db.engine import engine_for

    db = tmp_path / "copy.db"
    # SQLite's backup API: a consistent copy with what is still in the WAL (a file copy of
    # catalog.db alone could catch a checkpoint half-way)
    with sqlite3.connect(published.home / "catalog.db") as src, sqlite3.connect(db) as dst:
        src.backup(dst)
    engine = engine_for(f"sqlite:///{db}")
    for i in range(5):
        audit.append(engine, department="d", purpose=ITEM, action="lookup", outcome="allowed", holder=f"H{i}")
    report = audit.verify_chain(engine)
    assert report.ok
    n = report.entries
    with engine.begin() as c:      # alter one entry's purpose
        c.execute(sa.text("update audit_log set purpose = 'case:cover-up' where seq = :s"), {"s": n - 2})
    r = audit.verify_chain(engine)
    assert not r.ok and r.first_bad_seq == n - 2 and "altered" in r.problem
    with engine.begin() as c:
        c.execute(sa.text("update audit_log set purpose = :p where seq = :s"), {"p": ITEM, "s": n - 2})
        c.execute(sa.text("delete from audit_log where seq = :s"), {"s": n - 3})
    r = audit.verify_chain(engine)
    assert not r.ok and r.first_bad_seq == n - 3 and "missing" in r.problem
    with engine.begin() as c:     # delete a middle entry and re-link the next: its hash no longer fits
        c.execute(sa.text("delete from audit_log where seq >= :s"), {"s": n - 1})
    r = audit.verify_chain(engine)
    assert not r.ok and r.first_bad_seq == n - 3
