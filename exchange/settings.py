"""One typed settings object, built lazily from the environment."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from exchange.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "password", "secret", "passphrase", "test", "xxx"}


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
        value = os.environ.get(self.key_passphrase_env, "")
        if value.strip().lower() in PLACEHOLDER_SECRETS or len(value) < 12:
            raise ConfigError(
                f"set {self.key_passphrase_env} to a passphrase of at least 12 characters "
                "(not a placeholder): it encrypts the signing key at rest")
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
