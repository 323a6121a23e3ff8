"""A small published catalogue shared by the API tests (one 2,000-row silo, one DAG-less run)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def published(tmp_path_factory, silo_2k):
    """Settings of a home with one published business-licence dataset."""
    from exchange import stages
    from exchange.settings import Settings, reset_settings
    from tests.conftest import TEST_PASSPHRASE, register_demo_source

    home = tmp_path_factory.mktemp("api") / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EXCHANGE_HOME", str(home))
        mp.delenv("EXCHANGE_CATALOG_URL", raising=False)
        mp.delenv("EXCHANGE_SOURCES_DIR", raising=False)
        mp.setenv("EXCHANGE_KEY_PASSPHRASE", TEST_PASSPHRASE)
        reset_settings()
        register_demo_source(home, silo_2k[0])
        stages.run_all("smr_business_licence", "api-r1")
    reset_settings()
    return Settings(home=home, catalog_url=f"sqlite:///{home / 'catalog.db'}", sources_dir=home / "sources")
