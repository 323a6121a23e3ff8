"""The catalogue of this exchange's private home (EXCHANGE_HOME's settings), opened for the
CLI, the demo and the services below them."""
from __future__ import annotations

from base.settings import Settings, get_settings
from catalog.db.engine import schema_status, upgrade
from catalog.ledger.service import Ledger
from catalog.service import Catalog
from catalog.serving.access import Access
from catalog.serving.consumer import Consumer


def open_catalog(settings: Settings | None = None) -> Catalog:
    s = settings or get_settings().private_home()
    return Catalog(s.catalog_url, s.store)


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


def catalogue_schema(settings: Settings | None = None) -> dict:
    """The catalogue's schema revision and the code's head (`exchange db current`)."""
    return schema_status((settings or get_settings().private_home()).catalog_url)


def upgrade_catalogue(settings: Settings | None = None) -> dict:
    """Upgrade the catalogue's schema to the code's head (`exchange db upgrade`): the one-off
    step before starting machines against a shared catalogue; safe from several at once."""
    return upgrade((settings or get_settings().private_home()).catalog_url)
