"""The catalogue of this exchange's private home (EXCHANGE_HOME's settings), opened for the
CLI, the demo and the services below them."""
from __future__ import annotations

from base.settings import Settings, get_settings
from catalog.ledger.service import Ledger
from catalog.service import Catalog
from catalog.serving.access import Access
from catalog.serving.consumer import Consumer


def open_catalog(settings: Settings | None = None) -> Catalog:
    s = settings or get_settings().private_home()
    return Catalog(s.catalog_url, s.store_dir)


def open_ledger(settings: Settings | None = None) -> Ledger:
    """Runs, quarantine, pull state and alerts: the run ledger."""
    return Ledger((settings or get_settings().private_home()).catalog_url)


def open_access(catalog: Catalog | None = None) -> Access:
    """Departments, credentials and grants, read fresh on every call (no cache)."""
    return Access((catalog or open_catalog()).engine, ttl=0)


def open_consumer(operator: str | None = None) -> Consumer:
    """Requests as a department, under the API's rules; audited with the operator's account."""
    cat = open_catalog()
    return Consumer(cat, open_access(cat), operator=operator)
