"""One typed settings object, built lazily from the environment."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from exchange.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "password", "secret", "passphrase", "test", "xxx"}


SECRET_NAME = "exchange_key_passphrase"


def _airflow_secret(name: str) -> str | None:
    """A secret through Airflow's secrets backends; None outside a task or when absent."""
    if "airflow.sdk" not in sys.modules:      # only inside Airflow: never import it for this
        return None
    try:
        from airflow.sdk import Variable
        return Variable.get(name, default=None)
    except Exception:
        return None


@dataclass(frozen=True)
class Settings:
    home: Path                 # all local state: staging, store, keys, catalogue
    catalog_url: str
    sources_dir: Path          # registration files, one per source
    key_passphrase_env: str = "EXCHANGE_KEY_PASSPHRASE"

    @property
    def staging_dir(self) -> Path:
        return self.home / "staging"

    @property
    def store_dir(self) -> Path:
        return self.home / "store"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def jwks_path(self) -> Path:
        return self.keys_dir / "jwks.json"

    def key_passphrase(self) -> bytes:
        """From the environment, else (inside Airflow tasks) from Airflow's secrets backends
        as the Variable `exchange_key_passphrase` (env AIRFLOW_VAR_…, Vault, metastore …)."""
        value = os.environ.get(self.key_passphrase_env) or _airflow_secret(SECRET_NAME) or ""
        if value.strip().lower() in PLACEHOLDER_SECRETS or len(value) < 12:
            raise ConfigError(
                f"set {self.key_passphrase_env} (or the Airflow Variable {SECRET_NAME} in a "
                "secrets backend) to a passphrase of at least 12 characters, not a placeholder: "
                "it encrypts the signing key at rest")
        return value.encode()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    home = Path(os.environ.get("EXCHANGE_HOME", ROOT / ".state")).resolve()
    url = os.environ.get("EXCHANGE_CATALOG_URL") or f"sqlite:///{home / 'catalog.db'}"
    sources = Path(os.environ.get("EXCHANGE_SOURCES_DIR", home / "sources"))
    return Settings(home=home, catalog_url=url, sources_dir=sources)


def reset_settings() -> None:
    """Forget the cached settings (tests change the environment)."""
    get_settings.cache_clear()
