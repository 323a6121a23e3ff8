"""Change notices end to end without Airflow (the DAG's own run: tests/e2e/test_notices_airflow.py):
a conditional business-licence dataset, departments with different grants subscribed, a real
webhook receiver per department on 127.0.0.1 verifying every signature with PyJWT.

- a revocation and an amendment at the source reach each subscriber within one notify pass,
  each through its own grant's fields (withheld names the rest); a department whose grant
  lapsed gets nothing; a holder subscription (bound to a case) hears of its holder's record;
- replay after a cursor returns the rest in order with signatures that verify;
- deliveries are in the audit chain and in the holder's access report;
- a receiver down, then answering 503, then back gets every notice once per idempotency key,
  in order, after retries (the clock injected, no sleeping), even across a "restart";
- a receiver that never comes back is dead-lettered after the configured time, and alerted.
"""
from __future__ import annotations

import functools
import json
import random
import shutil
import sqlite3
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from base import clock
from base.errors import AccessDenied, InvalidRequest
from tests.conftest import ROOT, TODAY, make_signing_key, stored
from tests.notice_receiver import Receiver, verify

pytestmark = [pytest.mark.notices, pytest.mark.integration]

SOURCE, DATASET, TABLE = "smr_business_licence", "business_licence.market_regulation", "yyzz_djxx"
ITEM, CASE = "DJ-SCJG-0003", "case:2026-SZ-000123"
SOME = ["holder_name", "licence_number", "status", "valid_to"]


def _register(home, silo):
    from base.settings import get_settings

    make_signing_key()
    text = (ROOT / "demo" / "registrations" / "smr_business_licence.toml").read_text("utf-8")
    text = text.replace("{silo}", str(silo)).replace('sharing = "unconditional"', 'sharing = "conditional"')
    sources = get_settings().sources_dir
    sources.mkdir(parents=True, exist_ok=True)
    (sources / f"{SOURCE}.toml").write_text(text, encoding="utf-8")
    return stored(sources / f"{SOURCE}.toml")


def _jwks():
    from base.settings import get_settings
    from exchange.catalogue import open_catalog

    material = open_catalog(get_settings()).key_material()
    return json.loads(material[0])


class World:
    def __init__(self, home, silo):
        from exchange import stages
        from exchange.catalogue import open_catalog
        from tests.integration.catalog.test_append_only_log import single_row_records

        self.silo = silo
        _register(home, silo)
        assert stages.run_all(SOURCE, "r1", TODAY)["version"] == 1
        self.catalog = open_catalog()
        picks = single_row_records(self.catalog, silo)
        self.revoked, self.amended, self.other = picks[0], picks[1], picks[2]
        with self.catalog.engine.connect() as c:
            self.holder = c.execute(sa.text("select holder_key from records where record_id = :r"),
                                    {"r": self.revoked[0]}).scalar_one()
        self.runs = 1

    def consumer(self):
        from catalog.serving.access import Access
        from catalog.serving.consumer import Consumer
        from catalog.serving.subscriptions import Subscriptions

        return Subscriptions(Consumer(self.catalog, Access(self.catalog.engine, ttl=0)))

    def department(self, dept, purposes=None, fields=None, *, endpoint=None):
        from catalog.serving.access import Access, Caller
        from catalog.serving.subscriptions import set_endpoint

        access = Access(self.catalog.engine, ttl=0)
        access.add_department(dept, dept)
        gid = access.add_grant(dept, DATASET, purposes, fields) if purposes else None
        if endpoint:
            set_endpoint(self.catalog.engine, dept, endpoint)
        return Caller(dept, "consumer", "k-" + dept), gid

    def change(self, sql: str, args) -> int:
        from exchange import stages

        with sqlite3.connect(self.silo) as db:
            db.execute(sql, args)
        time.sleep(1.05)               # issued_at has second resolution: keep the versions apart
        self.runs += 1
        return stages.run_all(SOURCE, f"r{self.runs}", TODAY)["version"]

    def revoke(self, number) -> int:
        return self.change(f"update {TABLE} set DJZT = '吊销' where ZCH = ?", [number])


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request, home, silo_2k, tmp_path, monkeypatch):
    """The catalogue on SQLite, and on PostgreSQL (its row locks, FOR UPDATE; skipped with a
    reason when no server answers: EXCHANGE_TEST_PG)."""
    from base.settings import reset_settings

    silo = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], silo)
    if request.param == "sqlite":
        yield World(home, silo)
        return
    from tests.integration.conftest import fresh_pg_database

    with fresh_pg_database("t_notices") as url:
        monkeypatch.setenv("EXCHANGE_CATALOG_URL", url)
        reset_settings()
        yield World(home, silo)


def _data(rx):
    return [(e["type"].rsplit(".", 1)[1], e["data"]["record_id"]) for _, _, e in rx.events]


def test_a_revocation_reaches_each_subscriber_through_its_grant(world):
    from catalog.serving import audit
    from catalog.serving.notices import NoticeBook
    from exchange import notifying

    subs = world.consumer()
    with Receiver(_jwks) as full_rx, Receiver(_jwks) as part_rx, Receiver(_jwks) as lapsed_rx, \
            Receiver(_jwks) as court_rx:
        full, _ = world.department("full", [ITEM], None, endpoint=full_rx.url)
        part, _ = world.department("part", [ITEM], SOME, endpoint=part_rx.url)
        lapsed, lapsed_grant = world.department("lapsed", [ITEM], None, endpoint=lapsed_rx.url)
        court, _ = world.department("court", ["case:*"], None, endpoint=court_rx.url)
        nogrant, _ = world.department("nogrant")
        for caller in (full, part, lapsed):
            subs.add(caller, ITEM, dataset=DATASET, days=30)
        with pytest.raises(AccessDenied):          # no grant: no subscription (and refused, audited)
            subs.add(nogrant, ITEM, dataset=DATASET)
        with pytest.raises(InvalidRequest):        # a holder subscription is bound to a case
            subs.add(court, ITEM, holder_id=world.holder)
        subs.add(court, CASE, holder_id=world.holder, days=90)
        from catalog.serving.access import Access
        Access(world.catalog.engine, ttl=0).revoke_grant(lapsed_grant)

        world.change(f"update {TABLE} set ZS = ZS || '附1号' where ZCH = ?", [world.amended[1]])
        assert world.revoke(world.revoked[1]) == 3
        out = notifying.notify(DATASET)
        assert out["notices"] == 2 + 2 + 1 and out["delivered"] == 5 and out["failed"] == 0

        assert _data(full_rx) == [("amended", world.amended[0]), ("revoked", world.revoked[0])]
        assert _data(part_rx) == [("amended", world.amended[0]), ("revoked", world.revoked[0])]
        assert _data(court_rx) == [("revoked", world.revoked[0])]
        assert lapsed_rx.events == [] and lapsed_rx.posts == []
        assert not (full_rx.rejected or part_rx.rejected or court_rx.rejected)

        whole = full_rx.events[1][2]
        assert whole["specversion"] == "1.0" and whole["subject"] == world.revoked[0]
        assert whole["source"] == f"/v1/datasets/{DATASET}"
        d = whole["data"]
        assert (d["status"], d["reason"], d["disclosure"], d["withheld"], d["version"]) == \
            ("revoked", "revoked", "full", [], 3)
        assert d["record"]["licence_number"] == world.revoked[1] and "address" in d["record"]
        partial = part_rx.events[1][2]["data"]
        assert partial["disclosure"] == "partial" and partial["status"] == "revoked"
        assert set(partial["record"]) == {"record_id", *SOME} - {"status", "valid_to"} | (
            set(SOME) & set(d["record"]))
        assert "address" in partial["withheld"] and not set(partial["withheld"]) & set(SOME)
        assert part_rx.events[1][0] != full_rx.events[1][0]      # another view, another event
        assert court_rx.events[0][0] == full_rx.events[1][0]     # the same view: the same event

        again = notifying.notify(DATASET)                         # a re-run owes nothing more
        assert again["notices"] == 0 and again["delivered"] == 0 and len(full_rx.posts) == 2

    # replay: the rest after a cursor, in order, each signature verifiable
    page = subs.page(full, ITEM, after=0)
    assert [n["event"]["data"]["record_id"] for n in page["notices"]] == [world.amended[0], world.revoked[0]]
    rest = subs.page(full, ITEM, after=page["notices"][0]["seq"])
    assert [n["seq"] for n in rest["notices"]] == [page["notices"][1]["seq"]] and rest["next"] == page["next"]
    for n in page["notices"]:
        assert verify(n["body"].encode(), n["signature"], _jwks()) == n["event"]
    assert subs.page(full, ITEM, after=page["next"])["notices"] == []

    # audited: the deliveries are in the holder's access report
    report, _ = audit.holder_report(world.catalog.engine, world.holder)
    told = sorted((r["department"], r["outcome"]) for r in report if r["action"] == "notice")
    assert told == [("court", "delivered"), ("full", "delivered"), ("part", "delivered")]
    listed = NoticeBook(world.catalog.engine).listing(department="part")
    assert [n["state"] for n in listed] == ["delivered", "delivered"]


def test_a_receiver_down_then_back_gets_every_notice_once_in_order(world, monkeypatch):
    from base.settings import reset_settings
    from catalog.serving.notices import NoticeBook
    from exchange import notice_delivery, notifying
    from exchange.catalogue import open_catalog

    monkeypatch.setenv("EXCHANGE_NOTICE_RETRY_BASE", "60")
    monkeypatch.setenv("EXCHANGE_NOTICE_RETRY_MAX", "600")
    monkeypatch.setenv("EXCHANGE_NOTICE_DEAD_AFTER", "7200")
    reset_settings()
    rx, gone = Receiver(_jwks), Receiver(_jwks)          # neither is up yet
    subs = world.consumer()
    caller, _ = world.department("tax", [ITEM], None, endpoint=rx.url)
    lost, _ = world.department("lost", [ITEM], None, endpoint=gone.url)
    subs.add(caller, ITEM, dataset=DATASET)
    subs.add(lost, ITEM, dataset=DATASET)
    world.revoke(world.revoked[1])
    world.change(f"update {TABLE} set DJZT = (select DJZT from {TABLE} where ZCH = ?) where ZCH = ?",
                 [world.other[1], world.revoked[1]])       # reinstated
    world.revoke(world.other[1])

    t0 = clock.now()
    # the DAG task's own jitter, seeded: unseeded, a backoff under 1 s (1 in 60) failed the next check
    monkeypatch.setattr(notifying, "deliver", functools.partial(notice_delivery.deliver, rng=random.Random(7)))
    first = notifying.notify(DATASET, now=t0)           # both receivers down: nothing lost, nothing raised
    assert first["notices"] == 6 and first["delivered"] == 0 and first["failed"] == 2
    rng = random.Random(7)
    assert notice_delivery.deliver(now=t0 + timedelta(seconds=1), rng=rng)["failed"] == 0   # backing off

    rx.up()
    rx.status = 503                                      # up, but not taking them yet
    t = t0 + timedelta(seconds=700)
    assert notice_delivery.deliver(now=t, rng=rng)["failed"] == 2
    rx.status = 200
    # a "restart": new catalogue, access and book objects over the same database
    from catalog.serving.access import Access
    cat = open_catalog()
    book = NoticeBook(cat.engine, Access(cat.engine, ttl=0))
    t += timedelta(seconds=1300)
    out = notice_delivery.deliver(now=t, rng=rng, book=book)
    assert out["delivered"] == 3 and out["dead"] == 0
    # delivered twice is harmless: the receiver keeps one per key; here each went once
    keys = [k for k, _ in rx.posts]
    assert len(keys) == len(set(keys)) == 3 and not rx.rejected
    assert [seq for _, seq, _ in rx.events] == sorted(seq for _, seq, _ in rx.events)
    assert _data(rx) == [("revoked", world.revoked[0]), ("reinstated", world.revoked[0]),
                         ("revoked", world.other[0])]
    # the first: refused (down), 503, taken; the others went at their first attempt
    assert [n["attempts"] for n in reversed(book.listing(department="tax"))] == [3, 1, 1]

    # the receiver that never comes back: dead after EXCHANGE_NOTICE_DEAD_AFTER, alerted, audited
    t += timedelta(seconds=7200)
    out = notice_delivery.deliver(now=t, rng=rng)
    assert out["dead"] == 3 and out["delivered"] == 0
    assert {n["state"] for n in book.listing(department="lost")} == {"dead"}
    from exchange.catalogue import open_ledger
    dead = [a for a in open_ledger().alerts(dataset=DATASET) if a["kind"] == "notice_dead"]
    assert len(dead) == 1 and "3 notice(s) to department lost" in dead[0]["message"]
    with cat.engine.connect() as c:
        outcomes = c.execute(sa.text("select department, outcome from audit_log where action = 'notice'")).all()
    assert sorted(outcomes) == [("lost", "dead")] * 3 + [("tax", "delivered")] * 3
    rx.down()


def test_the_api_subscribes_replays_and_refuses(world):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from base.settings import get_settings
    from catalog.serving.access import Access
    from exchange import notifying

    app = create_app(get_settings(), rate=10_000, burst=10_000, cache_ttl=0)
    access = Access(world.catalog.engine, ttl=0)
    world.department("social", [ITEM, "case:*"], SOME)
    world.department("stranger")
    key = {"Authorization": f"Bearer {access.issue_credential('social')['key']}"}
    stranger = {"Authorization": f"Bearer {access.issue_credential('stranger')['key']}"}
    with TestClient(app) as client:
        made = client.post("/v1/subscriptions", params={"purpose": ITEM}, headers=key,
                           json={"dataset": DATASET, "days": 30})
        assert made.status_code == 201, made.text
        sid = made.json()["id"]
        held = client.post("/v1/subscriptions", params={"purpose": CASE}, headers=key,
                           json={"holder_id": world.holder, "days": 90})
        assert held.status_code == 201 and held.json()["holder"] == world.holder
        too_long = client.post("/v1/subscriptions", params={"purpose": CASE}, headers=key,
                               json={"holder_id": world.holder, "days": 91})
        assert too_long.status_code == 400 and "1 to 90" in too_long.json()["detail"]
        no_case = client.post("/v1/subscriptions", params={"purpose": ITEM}, headers=key,
                              json={"holder_id": world.holder})
        assert no_case.status_code == 400
        # the endpoint is the operator's: the body refuses it (no SSRF from consumers)
        assert client.post("/v1/subscriptions", params={"purpose": ITEM}, headers=key,
                           json={"dataset": DATASET, "endpoint": "http://127.0.0.1:1/"}).status_code == 422
        assert client.post("/v1/subscriptions", params={"purpose": ITEM}, headers=stranger,
                           json={"dataset": DATASET}).status_code == 403          # no grant: refused
        listed = client.get("/v1/subscriptions", params={"purpose": ITEM}, headers=key).json()
        assert [s["kind"] for s in listed] == ["dataset", "holder"]

        world.revoke(world.revoked[1])
        assert notifying.notify(DATASET)["notices"] == 1    # no endpoint: owed, waiting for replay
        page = client.get("/v1/notices", params={"purpose": ITEM, "after": 0}, headers=key).json()
        [n] = page["notices"]
        assert n["state"] == "pending" and n["event"]["data"]["disclosure"] == "partial"
        assert set(n["event"]["data"]["record"]) <= {"record_id", *SOME}
        assert verify(n["body"].encode(), n["signature"], _jwks()) == n["event"]
        assert client.get("/v1/notices", params={"purpose": ITEM, "after": page["next"]},
                          headers=key).json()["notices"] == []
        assert client.get("/v1/notices", params={"purpose": ITEM}, headers=stranger).json()["notices"] == []

        assert client.delete(f"/v1/subscriptions/{sid}", params={"purpose": ITEM}, headers=key).status_code == 200
        assert client.delete(f"/v1/subscriptions/{sid}", params={"purpose": ITEM}, headers=key).status_code == 404
        assert client.delete(f"/v1/subscriptions/{sid}", params={"purpose": ITEM},
                             headers=stranger).status_code == 404
    with world.catalog.engine.connect() as c:
        actions = {r[0] for r in c.execute(sa.text("select action from audit_log where department = 'social'"))}
    assert {"subscription.add", "subscription.list", "notices.replay", "subscription.remove"} <= actions


@pytest.mark.parametrize("window", [None, 0])
def test_two_delivery_workers_at_once_send_each_notice_once(world, monkeypatch, window):
    """`window` 0: each claim's lease is taken to run out after one POST: the rest released, claimed anew."""
    import threading

    from exchange import notice_delivery, notifying

    if window is not None:
        monkeypatch.setattr(notice_delivery, "WINDOW", window)

    subs = world.consumer()
    with Receiver(_jwks) as rx:
        caller, _ = world.department("tax", [ITEM], None, endpoint=rx.url)
        subs.add(caller, ITEM, dataset=DATASET)
        picks = [world.revoked, world.amended, world.other]
        with sqlite3.connect(world.silo) as db:
            for _, number in picks:
                db.execute(f"update {TABLE} set DJZT = '吊销' where ZCH = ?", [number])
        world.change("select 1", [])
        from base.settings import get_settings
        from catalog.serving import notice_fanout
        from catalog.signing.keys import keystore_for
        monkeypatch.setattr(notice_fanout, "FLUSH", 1)           # written a notice at a time
        assert notice_fanout.fan_out(world.catalog, keystore_for(get_settings()), DATASET) == 3
        outs = []
        workers = [threading.Thread(target=lambda: outs.append(notice_delivery.deliver())) for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert sum(o["delivered"] for o in outs) == 3
        assert len(rx.posts) == 3 == len({k for k, _ in rx.posts})
        assert [seq for _, seq in rx.posts] == sorted(seq for _, seq in rx.posts)
        assert notifying.notify(DATASET)["delivered"] == 0


def test_expiries_and_objection_outcomes_are_told(world):
    from datetime import UTC, datetime, timedelta

    from base.settings import get_settings
    from catalog.db.models import Objection
    from catalog.serving import notice_fanout
    from catalog.signing.keys import keystore_for
    from exchange import notice_delivery

    keys, subs = keystore_for(get_settings()), world.consumer()
    with Receiver(_jwks) as rx:
        caller, _ = world.department("tax", [ITEM], None, endpoint=rx.url)
        subs.add(caller, ITEM, dataset=DATASET)
        with world.catalog.engine.connect() as c:
            day = c.execute(sa.text("select min(valid_to) from records where superseded_in is null and "
                                    "status = 'valid' and valid_to >= :t"), {"t": TODAY}).scalar()
            day = day if not isinstance(day, str) else datetime.fromisoformat(day).date()
            due = {r[0] for r in c.execute(sa.text("select record_id from records where superseded_in is null "
                                                   "and status = 'valid' and valid_to = :d"), {"d": day})}
        assert due
        # the first pass only marks where it stands (no backfill); a record turns expired the day after valid_to
        assert notice_fanout.expiries(world.catalog, keys, TODAY) == 0
        assert notice_fanout.expiries(world.catalog, keys, day) == 0
        assert notice_fanout.expiries(world.catalog, keys, day + timedelta(days=1)) == len(due)
        assert notice_fanout.expiries(world.catalog, keys, day + timedelta(days=1)) == 0

        with world.catalog.engine.begin() as c:
            now = clock.now()
            c.execute(sa.insert(Objection.__table__).values(
                record_id=world.revoked[0], dataset_id=DATASET, version=1, department_id="tax", purpose=ITEM,
                reason="地址有误", state="corrected", filed_at=now, due_at=now, resolved_at=now,
                resolution="source corrected", corrected_version=2))
        assert notice_fanout.objection_outcomes(world.catalog, keys) == 1
        assert notice_fanout.objection_outcomes(world.catalog, keys) == 0
        assert notice_delivery.deliver()["delivered"] == len(due) + 1
        types = [e["type"] for _, _, e in rx.events]
        assert types == ["cn.gov.exchange.record.expired"] * len(due) + ["cn.gov.exchange.objection.corrected"]
        assert {e["data"]["record_id"] for _, _, e in rx.events[:-1]} == due
        expired = rx.events[0][2]
        assert expired["data"]["status"] == "expired" and expired["time"].startswith(
            datetime.combine(day + timedelta(days=1), datetime.min.time(), clock.BEIJING)
            .astimezone(UTC).strftime("%Y-%m-%dT%H"))
        outcome = rx.events[-1][2]["data"]
        assert (outcome["state"], outcome["corrected_version"], outcome["record_id"]) == \
            ("corrected", 2, world.revoked[0])
    with world.catalog.engine.connect() as c:
        assert c.execute(sa.text("select notified_at from objections")).scalar() is not None


def test_the_docs_verification_example_verifies_a_real_notice(world):
    """docs/consumer-api.md's Python example, run as written on a notice from replay; a changed
    byte fails it."""
    import re

    from exchange import notifying

    page_text = (ROOT / "docs" / "consumer-api.md").read_text("utf-8")
    section = page_text.split("## Subscriptions and change notices", 1)[1].split("\n## ", 1)[0]
    [example] = re.findall(r"```python\n(.*?)```", section, re.S)
    space: dict = {}
    exec(compile(example, "consumer-api.md", "exec"), space)      # noqa: S102 - the page's own example
    subs = world.consumer()
    caller, _ = world.department("tax", [ITEM], None)
    subs.add(caller, ITEM, dataset=DATASET)
    world.revoke(world.revoked[1])
    notifying.notify(DATASET)
    [n] = subs.page(caller, ITEM)["notices"]
    assert space["verify_notice"](n["body"].encode(), n["signature"], _jwks()) == n["event"]
    with pytest.raises(Exception):  # noqa: B017 - whatever PyJWT raises for a bad signature
        space["verify_notice"](n["body"].replace("revoked", "reinstated", 1).encode(), n["signature"], _jwks())


def test_a_notice_the_grant_no_longer_allows_is_withheld_and_audited(world):
    from catalog.serving import audit
    from catalog.serving.access import Access
    from catalog.serving.notices import NoticeBook
    from exchange import notice_delivery, notifying

    subs = world.consumer()
    with Receiver(_jwks) as rx:
        rx.down()                                            # down when the notice is made
        caller, gid = world.department("tax", [ITEM], None, endpoint=rx.url)
        subs.add(caller, ITEM, dataset=DATASET)
        world.revoke(world.revoked[1])
        t0 = clock.now()
        assert notifying.notify(DATASET, now=t0)["failed"] == 1
        Access(world.catalog.engine, ttl=0).revoke_grant(gid)
        rx.up()
        out = notice_delivery.deliver(now=t0 + timedelta(hours=2))
        assert out["delivered"] == 0 and rx.posts == []
    [n] = NoticeBook(world.catalog.engine).listing(department="tax")
    assert n["state"] == "withheld" and "no current grant" in n["last_error"]
    report, _ = audit.holder_report(world.catalog.engine, world.holder)
    assert [(r["department"], r["outcome"]) for r in report if r["action"] == "notice"] == [("tax", "withheld")]


def test_the_operator_cli_sets_endpoints_lists_and_delivers(world, capsys):
    from cli import main

    world.department("tax", [ITEM], None)
    assert main(["departments", "endpoint", "tax", "ftp://127.0.0.1/x"]) == 4      # http(s) only
    assert main(["departments", "endpoint", "tax"]) == 4                           # a URL or --clear
    assert main(["departments", "endpoint", "nobody", "http://127.0.0.1:9/"]) != 0
    capsys.readouterr()
    with Receiver(_jwks) as rx:
        assert main(["departments", "endpoint", "tax", rx.url, "--json"]) == 0
        assert json.loads(capsys.readouterr().out) == {"department": "tax", "endpoint": rx.url}
        world.consumer().add(world.department("tax")[0], ITEM, dataset=DATASET)
        world.revoke(world.revoked[1])
        assert main(["notices", "deliver", "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert (out["notices"], out["delivered"], out["dead"]) == (1, 1, 0)
        assert [e["data"]["record_id"] for _, _, e in rx.events] == [world.revoked[0]]
    assert main(["notices", "list", "--state", "delivered", "--json"]) == 0
    [n] = json.loads(capsys.readouterr().out)
    assert (n["department"], n["type"]) == ("tax", "cn.gov.exchange.record.revoked")
    assert main(["notices", "list"]) == 0 and "变更通知" in capsys.readouterr().out
    assert main(["departments", "endpoint", "tax", "--clear"]) == 0


def test_a_holder_subscription_hears_of_its_holders_expiry(world):
    from datetime import datetime, timedelta

    from base.settings import get_settings
    from catalog.serving import notice_fanout
    from catalog.serving.subscriptions import page
    from catalog.signing.keys import keystore_for

    keys = keystore_for(get_settings())
    with world.catalog.engine.connect() as c:
        rid, holder, day = c.execute(sa.text(
            "select record_id, holder_key, valid_to from records where superseded_in is null and status = 'valid' "
            "and valid_to >= :t order by valid_to, record_id limit 1"), {"t": TODAY}).one()
    day = day if not isinstance(day, str) else datetime.fromisoformat(day).date()
    court, _ = world.department("court", ["case:*"], None)
    world.consumer().add(court, CASE, holder_id=holder, days=90)       # no dataset subscription at all
    assert notice_fanout.expiries(world.catalog, keys, TODAY) == 0
    assert notice_fanout.expiries(world.catalog, keys, day + timedelta(days=1)) >= 1
    told = page(world.catalog.engine, "court", 0, 100)
    assert rid in {n["event"]["data"]["record_id"] for n in told}
    assert {n["event"]["type"] for n in told} == {"cn.gov.exchange.record.expired"}
    with world.catalog.engine.connect() as c:
        holders = {r[0] for r in c.execute(sa.text("select holder_key from notices"))}
    assert holders == {holder}


def test_one_kept_alive_connection_per_endpoint_reconnected_once_when_dropped():
    """The POSTs of a department's pass share one HTTP/1.1 connection; one the receiver closed
    while idle is opened anew (once); a redirect is not followed; a refused one names its error."""
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from catalog.serving.notices import Claimed
    from exchange.notice_delivery import _Endpoint

    seen: list[tuple[int, str]] = []           # (connection's client port, path)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.client_address[1], self.path))
            self.send_response(302 if self.path == "/moved" else 204)
            self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.close_connection = self.path == "/drops"     # closes without saying so

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    got = [Claimed(i, "d", f"ev-{i}", "t", f'{{"n": {i}}}', "s", None, None, None, "p", 0, clock.now())
           for i in range(3)]
    try:
        with _Endpoint(f"{base}/keeps", 5) as http:
            assert [http.post(g) for g in got] == [None] * 3
        with _Endpoint(f"{base}/drops", 5) as http:
            assert [http.post(g) for g in got] == [None] * 3
        with _Endpoint(f"{base}/moved", 5) as http:
            assert http.post(got[0]) == "HTTP 302 from the receiver"
    finally:
        server.shutdown()
        server.server_close()
    keeps = [port for port, path in seen if path == "/keeps"]
    drops = [port for port, path in seen if path == "/drops"]
    assert len(keeps) == 3 and len(set(keeps)) == 1
    assert len(drops) == 3 and len(set(drops)) == 3
    assert [path for _, path in seen].count("/elsewhere") == 0
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with _Endpoint(f"http://127.0.0.1:{port}/x", 5) as http:
        assert http.post(got[0]).startswith("ConnectionRefusedError: ")


def test_a_claim_takes_the_batch_at_once_or_row_by_row_behind_another_worker(world):
    """A batch is leased by one UPDATE when it wins every row; when another worker holds one of
    them, nothing of that UPDATE stays and the rows are taken in seq order up to the held one."""
    from base.settings import get_settings
    from catalog.serving import notice_fanout
    from catalog.serving.notices import NoticeBook
    from catalog.signing.keys import keystore_for

    caller, _ = world.department("tax", [ITEM], None, endpoint="http://127.0.0.1:9/never")
    world.consumer().add(caller, ITEM, dataset=DATASET)
    with sqlite3.connect(world.silo) as db:
        for _, number in [world.revoked, world.amended, world.other]:
            db.execute(f"update {TABLE} set DJZT = '吊销' where ZCH = ?", [number])
    world.change("select 1", [])
    assert notice_fanout.fan_out(world.catalog, keystore_for(get_settings()), DATASET) == 3
    book, now = NoticeBook(world.catalog.engine), clock.now()
    with world.catalog.engine.connect() as c:
        seqs = list(c.execute(sa.text("select seq from notices where department_id = 'tax' order by seq")).scalars())

    def leases():
        with world.catalog.engine.connect() as c:
            return [(r.next_attempt_at, r.first_attempt_at) for r in c.execute(sa.text(
                "select next_attempt_at, first_attempt_at from notices where department_id = 'tax' order by seq"))]

    assert [g.seq for g in book.claim("tax", now, 60, limit=3)] == seqs         # all at once
    assert book.claim("tax", now, 60, limit=3) == []                            # held: by this worker
    book.release(book.claim("tax", now + timedelta(seconds=61), 60, limit=3), now)
    later = now + timedelta(seconds=120)
    with world.catalog.engine.begin() as c:       # another worker holds the second one
        c.execute(sa.text("update notices set next_attempt_at = :t where seq = :s"), {"t": later, "s": seqs[1]})
    before = leases()
    assert [g.seq for g in book.claim("tax", now, 60, limit=3)] == seqs[:1]     # up to the held one
    after = leases()
    assert after[1] == before[1] and after[2] == before[2] and after[0] != before[0]
    assert [g.seq for g in book.claim("tax", now, 60, limit=3, after=seqs[0])] == []   # the held one is next
