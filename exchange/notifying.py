"""The tasks of change notices: `notify` after a source's publish (its DAG's last task), `sweep`
every two minutes (dags/exchange_notices.py) and `exchange notices deliver`.
Fan-out signs each event once (here, where the signing key is; API hosts have none)."""
from __future__ import annotations

from datetime import date, datetime

from base import clock
from base.settings import Settings, get_settings
from catalog.publish.key_status import check_signer
from catalog.service import Catalog
from catalog.serving import notice_fanout
from catalog.serving.access import Access
from catalog.signing.keys import KeyStore, keystore_for
from exchange.notice_delivery import deliver


def _open(settings: Settings | None) -> tuple[Settings, Catalog, KeyStore]:
    s = settings or get_settings()
    catalog = Catalog(s.catalog_url, s.store)
    keys = keystore_for(s)
    check_signer(keys, catalog.engine, s.jwks_path)     # its key is in the JWKS receivers verify with
    return s, catalog, keys


def notify(dataset: str, settings: Settings | None = None, now: datetime | None = None) -> dict:
    """The dataset's new versions fanned out, and the outcomes of objections (a correction this
    version closed), then one delivery pass for the departments owed its notices: a subscriber
    hears of a revocation, and an objector of its objection's closing, within the run."""
    s, catalog, keys = _open(settings)
    owed = notice_fanout.fan_out(catalog, keys, dataset, now)
    outcomes = notice_fanout.objection_outcomes(catalog, keys, now)
    return {"dataset": dataset, "notices": owed, "objections": outcomes,
            **deliver(s, now, dataset=dataset, catalog=catalog)}


def sweep(settings: Settings | None = None, now: datetime | None = None, today: date | None = None) -> dict:
    """Every dataset's versions not yet fanned out, the day's expiries, objection outcomes,
    then a delivery pass (retries due, dead letters alerted)."""
    s, catalog, keys = _open(settings)
    now = now or clock.now()
    access = Access(catalog.engine, ttl=60)
    owed = sum(notice_fanout.fan_out(catalog, keys, d["dataset"], now, access) for d in catalog.datasets()
                if d["version"] is not None)
    expired = notice_fanout.expiries(catalog, keys, today, now, access)
    outcomes = notice_fanout.objection_outcomes(catalog, keys, now)
    return {"notices": owed, "expired": expired, "objections": outcomes, **deliver(s, now, catalog=catalog)}
