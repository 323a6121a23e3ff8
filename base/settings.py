"""One typed settings object, built lazily from the environment."""
from __future__ import annotations

import configparser
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from base.errors import ConfigError
from base.files import private_dir

if TYPE_CHECKING:
    from base.storage import Store

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "password", "secret", "passphrase", "test", "xxx"}


SECRET_NAME = "exchange_key_passphrase"
# Airflow executors that run every task on this machine; any other (CeleryExecutor,
# KubernetesExecutor, EdgeExecutor, a cloud or custom executor) may run them elsewhere
LOCAL_EXECUTORS = frozenset({"LocalExecutor", "SequentialExecutor", "DebugExecutor"})
SIGNING_KEY_SECRET = "exchange_signing_key"      # the Airflow Variable, or Connection, holding the encrypted PEM


def _airflow_secret(name: str) -> str | None:
    """A secret through Airflow's secrets backends; None outside a task or when absent."""
    if "airflow.sdk" not in sys.modules:      # only inside Airflow: never import it for this
        return None
    try:
        from airflow.sdk import Variable
        value: str | None = Variable.get(name, default=None)
        return value
    except Exception:
        return None


def _airflow_connection_secret(conn_id: str) -> str | None:
    """The PEM in an Airflow Connection from the secrets backends (its password, else its
    extra's "pem"); None outside Airflow or when absent."""
    if "airflow.sdk" not in sys.modules:      # only inside Airflow: never import it for this
        return None
    try:
        from airflow.sdk import Connection
        conn = Connection.get(conn_id)
    except Exception:
        return None
    if conn.password and conn.password.strip():
        return str(conn.password)
    pem = conn.extra_dejson.get("pem") if conn.extra else None
    return pem if isinstance(pem, str) else None


@dataclass(frozen=True)
class Settings:
    home: Path                 # all local state: staging, store, keys, catalogue
    catalog_url: str
    sources_dir: Path          # registration files, one per source
    key_passphrase_env: str = "EXCHANGE_KEY_PASSPHRASE"
    alerts: str = "log"                                # EXCHANGE_ALERTS: log, webhook:URL, email:ADDR
    dashboard_url: str = "http://127.0.0.1:8000"       # links in alerts: /dashboard/datasets/{id}
    airflow_url: str = "http://127.0.0.1:8080"         # links in alerts; `exchange run`/`approve` call its /api/v2
    airflow_username: str | None = None                # EXCHANGE_AIRFLOW_USERNAME: POST /auth/token for a JWT
    airflow_password: str | None = field(default=None, repr=False)   # EXCHANGE_AIRFLOW_PASSWORD
    airflow_token: str | None = field(default=None, repr=False)      # EXCHANGE_AIRFLOW_TOKEN: a JWT instead
    airflow_timeout: float = 10.0                      # EXCHANGE_AIRFLOW_TIMEOUT: seconds per API request
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_from: str = "exchange@localhost"
    smtp_starttls: bool = False                        # user/password: EXCHANGE_SMTP_USER/_PASSWORD
    alert_timeout: float = 5.0                         # seconds per webhook/SMTP attempt
    alert_attempts: int = 3
    run_deadline: float | None = None                  # seconds; default: the source's update cycle
    silo_roots: tuple[Path, ...] = ()                  # where file silos may be; default home/drops, home/silos
    # the API and dashboard (`exchange serve`)
    api_cache_ttl: float = 2.0                         # EXCHANGE_API_CACHE_TTL: seconds credentials are cached
    api_rate: float = 50.0                             # EXCHANGE_API_RATE: requests/s per department
    api_burst: int = 100                               # EXCHANGE_API_BURST
    api_buckets: str | None = None                     # EXCHANGE_API_BUCKETS: set by `serve --workers N`
    api_rate_store: str | None = None                  # EXCHANGE_API_RATE_STORE: redis://… shared by API hosts
    api_rate_prefix: str = "exchange:rate:"            # EXCHANGE_API_RATE_PREFIX: its keys' prefix
    api_audit_inline: bool | None = None               # EXCHANGE_API_AUDIT_INLINE=1|0; default: SQLite only
    api_refusal_window: float = 60.0                   # EXCHANGE_API_REFUSAL_WINDOW: seconds
    dashboard_secret: str | None = None                # EXCHANGE_DASHBOARD_SECRET; default random per process
    metrics_token: str | None = None                   # EXCHANGE_METRICS_TOKEN: GET /metrics's bearer token
    catalogue_publisher: str = "政务数据共享交换平台"    # EXCHANGE_CATALOGUE_PUBLISHER: the DCAT publisher
    # the catalogue's schema
    auto_migrate: bool | None = None                   # EXCHANGE_AUTO_MIGRATE=1|0; default: see migrates_itself
    airflow_executor: str = ""                         # Airflow's [core] executor, as read by airflow_executor()
    signing_key_file: Path | None = None               # EXCHANGE_SIGNING_KEY_FILE: the active key's PEM
    # where hand-offs, mirrors, versions, quarantine files and Data Docs live (base/storage.py)
    store_url: str = ""                                # EXCHANGE_STORE_URL; default file://<home>
    s3_endpoint_url: str | None = None                 # EXCHANGE_S3_ENDPOINT_URL: an S3-compatible server
    s3_region: str | None = None                       # EXCHANGE_S3_REGION
    display_tz: str = "Asia/Shanghai"                  # EXCHANGE_DISPLAY_TZ: times shown to people (base/times.py)
    lineage_namespace: str = "exchange://127.0.0.1:8000"  # EXCHANGE_LINEAGE_NAMESPACE: OpenLineage, published data
    log_origin: str = "exchange.local"                 # EXCHANGE_LOG_ORIGIN: names the logs' checkpoints and their key
    # change notices to subscribers (exchange/notice_delivery.py), in seconds
    notice_retry_base: float = 30.0                    # EXCHANGE_NOTICE_RETRY_BASE: first backoff's ceiling
    notice_retry_max: float = 3600.0                   # EXCHANGE_NOTICE_RETRY_MAX: the longest backoff
    notice_dead_after: float = 86400.0                 # EXCHANGE_NOTICE_DEAD_AFTER: then dead-lettered, alerted
    notice_timeout: float = 10.0                       # EXCHANGE_NOTICE_TIMEOUT: per POST

    def __post_init__(self) -> None:
        roots = self.silo_roots or (self.home / "drops", self.home / "silos")
        object.__setattr__(self, "silo_roots", tuple(Path(r).resolve() for r in roots))
        if not self.store_url:
            object.__setattr__(self, "store_url", self.home.as_uri())

    @cached_property
    def store(self) -> Store:
        """The store every task shares (EXCHANGE_STORE_URL): keys are relative to it."""
        from base.storage import Store  # lazy: pyarrow, which parsing a DAG file never needs

        return Store.from_url(self.store_url, endpoint_url=self.s3_endpoint_url, region=self.s3_region)

    @property
    def remote_executor(self) -> bool:
        """Airflow's executor may run tasks on other machines (Celery, Kubernetes, Edge …)."""
        return is_remote_executor(self.airflow_executor)

    def migrates_itself(self, dialect: str) -> bool:
        """Whether a process that opens a catalogue behind the code's schema upgrades it on its
        own: EXCHANGE_AUTO_MIGRATE when set; else yes on SQLite (the embedded default) and on a
        shared database under a local executor, no on a shared database under an executor that
        runs tasks on other machines (there `exchange db upgrade` is an explicit step)."""
        if self.auto_migrate is not None:
            return self.auto_migrate
        return dialect == "sqlite" or not self.remote_executor

    @property
    def scratch_dir(self) -> Path:
        """This machine's private scratch space for a task's own work (never handed on)."""
        return self.home / "scratch"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def jwks_path(self) -> Path:
        return self.keys_dir / "jwks.json"

    def private_home(self) -> Settings:
        """Make (or tighten) the home, scratch, key and (a local store's) store directories 0700: records,
        quarantined rows and keys are for the exchange's OS account only."""
        for d in (self.home, self.scratch_dir, self.keys_dir, *self._local_store_dirs()):
            private_dir(d)
        return self

    def _local_store_dirs(self) -> tuple[Path, ...]:
        root = self.store.local_path()
        return () if root is None else (root, root / "staging", root / "store")

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

    def signing_key(self) -> tuple[bytes, str] | None:
        """The active signing key given to this machine, as (encrypted PKCS#8 PEM, where it came
        from): EXCHANGE_SIGNING_KEY (the PEM itself), else the file EXCHANGE_SIGNING_KEY_FILE,
        else (inside Airflow tasks) from the secrets backends the Airflow Variable
        `exchange_signing_key`, else the Airflow Connection `exchange_signing_key` (the PEM in its
        password, or in its extra's "pem"). None: the key directory's active key signs (the
        embedded default)."""
        pem = os.environ.get("EXCHANGE_SIGNING_KEY")
        if pem and pem.strip():
            return pem.strip().encode() + b"\n", "EXCHANGE_SIGNING_KEY"
        if self.signing_key_file is not None:
            try:
                return self.signing_key_file.read_bytes(), f"EXCHANGE_SIGNING_KEY_FILE ({self.signing_key_file})"
            except OSError as exc:
                raise ConfigError(f"cannot read EXCHANGE_SIGNING_KEY_FILE {self.signing_key_file}: "
                                  f"{exc.strerror or exc}") from None
        value = _airflow_secret(SIGNING_KEY_SECRET)
        if value and value.strip():
            return value.strip().encode() + b"\n", f"the Airflow Variable {SIGNING_KEY_SECRET}"
        value = _airflow_connection_secret(SIGNING_KEY_SECRET)
        if value and value.strip():
            return value.strip().encode() + b"\n", f"the Airflow Connection {SIGNING_KEY_SECRET}"
        return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    home = Path(os.environ.get("EXCHANGE_HOME", ROOT / ".state")).resolve()
    url = os.environ.get("EXCHANGE_CATALOG_URL") or f"sqlite:///{home / 'catalog.db'}"
    sources = Path(os.environ.get("EXCHANGE_SOURCES_DIR", home / "sources"))
    env = os.environ.get
    try:
        alerting: dict[str, Any] = dict(
            alerts=env("EXCHANGE_ALERTS") or "log",
            dashboard_url=(env("EXCHANGE_DASHBOARD_URL") or "http://127.0.0.1:8000").rstrip("/"),
            airflow_url=(env("EXCHANGE_AIRFLOW_URL") or "http://127.0.0.1:8080").rstrip("/"),
            smtp_host=env("EXCHANGE_SMTP_HOST") or "127.0.0.1",
            smtp_port=int(env("EXCHANGE_SMTP_PORT") or 25),
            smtp_from=env("EXCHANGE_SMTP_FROM") or "exchange@localhost",
            smtp_starttls=(env("EXCHANGE_SMTP_STARTTLS") or "").lower() in ("1", "true", "yes"),
            alert_timeout=float(env("EXCHANGE_ALERTS_TIMEOUT") or 5),
            alert_attempts=max(1, int(env("EXCHANGE_ALERTS_ATTEMPTS") or 3)),
            run_deadline=float(d) if (d := env("EXCHANGE_RUN_DEADLINE")) else None,
            airflow_username=env("EXCHANGE_AIRFLOW_USERNAME") or None,
            airflow_password=env("EXCHANGE_AIRFLOW_PASSWORD") or None,
            airflow_token=env("EXCHANGE_AIRFLOW_TOKEN") or None,
            airflow_timeout=float(env("EXCHANGE_AIRFLOW_TIMEOUT") or 10))
    except ValueError as exc:
        raise ConfigError(f"an alert setting is not a number ({exc}): check EXCHANGE_SMTP_PORT, "
                          "EXCHANGE_ALERTS_TIMEOUT, EXCHANGE_ALERTS_ATTEMPTS, EXCHANGE_RUN_DEADLINE, "
                          "EXCHANGE_AIRFLOW_TIMEOUT") from None
    roots = tuple(Path(r).expanduser() for r in (env("EXCHANGE_SILO_ROOTS") or "").split(os.pathsep) if r.strip())
    executor = airflow_executor()
    if url.startswith("sqlite") and is_remote_executor(executor):
        raise ConfigError(
            f"the catalogue is a SQLite file ({url}) but Airflow's executor ({executor}) runs tasks on "
            "other machines, which cannot share it: set EXCHANGE_CATALOG_URL to a PostgreSQL database "
            "(postgresql+psycopg://USER@HOST/DB) that every machine reaches, then run `exchange db upgrade` once")
    key_file = env("EXCHANGE_SIGNING_KEY_FILE")
    display_tz = (env("EXCHANGE_DISPLAY_TZ") or "Asia/Shanghai").strip()
    _check_zone(display_tz)
    return Settings(home=home, catalog_url=url, sources_dir=sources, silo_roots=roots, **alerting,
                    **_api_settings(env), auto_migrate=_switch(env("EXCHANGE_AUTO_MIGRATE"), "EXCHANGE_AUTO_MIGRATE"),
                    airflow_executor=executor,
                    signing_key_file=Path(key_file).expanduser() if key_file else None,
                    store_url=_store_url(env("EXCHANGE_STORE_URL"), home),
                    s3_endpoint_url=env("EXCHANGE_S3_ENDPOINT_URL") or None,
                    s3_region=env("EXCHANGE_S3_REGION") or None,
                    display_tz=display_tz, log_origin=_log_origin(env("EXCHANGE_LOG_ORIGIN")),
                    **_notice_settings(env),
                    lineage_namespace=_lineage_namespace(env("EXCHANGE_LINEAGE_NAMESPACE"), alerting["dashboard_url"]))


NOTICE_SETTINGS = {"notice_retry_base": "EXCHANGE_NOTICE_RETRY_BASE", "notice_retry_max": "EXCHANGE_NOTICE_RETRY_MAX",
                   "notice_dead_after": "EXCHANGE_NOTICE_DEAD_AFTER", "notice_timeout": "EXCHANGE_NOTICE_TIMEOUT"}


def _notice_settings(env: Callable[..., str | None]) -> dict[str, Any]:
    """The change notices' retry, dead-letter and timeout settings: positive seconds."""
    out: dict[str, Any] = {}
    for name, var in NOTICE_SETTINGS.items():
        value = env(var)
        if value is None or not value.strip():
            continue
        try:
            out[name] = float(value)
        except ValueError:
            out[name] = -1.0
        if not 0 < out[name] < 10**8:
            raise ConfigError(f"{var}={value!r}: give a positive number of seconds")
    return out


def _log_origin(value: str | None) -> str:
    """The exchange's name in its logs' checkpoints (C2SP tlog-checkpoint origin, a schema-less
    URL) and the name of the key that signs them: no spaces or '+', set once and never changed."""
    origin = (value or "exchange.local").strip().rstrip("/")
    if not origin or any(c.isspace() or c == "+" for c in origin) or "://" in origin:
        raise ConfigError(f"EXCHANGE_LOG_ORIGIN {value!r}: a schema-less URL like exchange.example.gov.cn, "
                          "without spaces or '+'")
    return origin


def _lineage_namespace(value: str | None, dashboard_url: str) -> str:
    """The OpenLineage namespace of the published datasets: EXCHANGE_LINEAGE_NAMESPACE, else
    exchange://<the dashboard's host and port>; the same on every machine that runs tasks."""
    value = (value or "").strip().rstrip("/")
    if not value:
        return f"exchange://{urlsplit(dashboard_url).netloc or 'localhost'}"
    if not re.fullmatch(r"[a-z][a-z0-9+.-]*://[^/\s@]+", value):
        raise ConfigError(f"EXCHANGE_LINEAGE_NAMESPACE={value!r}: use scheme://name, e.g. "
                          "exchange://exchange.example.gov.cn (no path, no credentials)")
    return value


def _store_url(url: str | None, home: Path) -> str:
    """EXCHANGE_STORE_URL: file:///PATH or s3://BUCKET/PREFIX; a bare path is taken as file://."""
    url = (url or "").strip()
    if not url:
        return home.as_uri()
    if "://" not in url:
        return Path(url).expanduser().resolve().as_uri()
    if not url.startswith(("file://", "s3://")):
        raise ConfigError(f"EXCHANGE_STORE_URL={url!r}: use file:///PATH or s3://BUCKET/PREFIX")
    return url


def _check_zone(name: str) -> None:
    """EXCHANGE_DISPLAY_TZ names an IANA time zone this machine knows."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"EXCHANGE_DISPLAY_TZ={name!r} is not an IANA time zone "
                          "(e.g. Asia/Shanghai, UTC)") from None


def _switch(value: str | None, name: str) -> bool | None:
    if value is None or not value.strip():
        return None
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={value!r}: use 1 or 0 (or leave it unset)")


def airflow_executor(env: Callable[..., str | None] | None = None) -> str:
    """Airflow's [core] executor ('' when not set): through Airflow's conf where Airflow is
    already loaded (a DAG, a task), else AIRFLOW__CORE__EXECUTOR, else the config file Airflow
    would read (AIRFLOW_CONFIG, else $AIRFLOW_HOME/airflow.cfg). Never imports Airflow. An `env`
    given (a test's) is read alone: Airflow's conf reads the process's environment."""
    if env is None and "airflow.configuration" in sys.modules:
        try:
            from airflow.configuration import conf  # lazy: only where Airflow is already loaded
            return str(conf.get("core", "executor", fallback="") or "")
        except Exception:
            pass
    env = env or os.environ.get
    if value := env("AIRFLOW__CORE__EXECUTOR"):
        return value
    path = env("AIRFLOW_CONFIG") or str(Path(env("AIRFLOW_HOME") or Path.home() / "airflow") / "airflow.cfg")
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(path, encoding="utf-8")
        return parser.get("core", "executor", fallback="").strip()
    except (configparser.Error, OSError, UnicodeDecodeError):
        return ""


def is_remote_executor(executor: str) -> bool:
    """Any executor in Airflow's list (`alias:module.Class`, comma-separated) that is not one of
    LOCAL_EXECUTORS."""
    names = [part.strip().split(":")[-1].rsplit(".", 1)[-1] for part in executor.split(",") if part.strip()]
    return any(name not in LOCAL_EXECUTORS for name in names)


def _api_settings(env: Callable[..., str | None]) -> dict[str, Any]:
    inline = env("EXCHANGE_API_AUDIT_INLINE")
    try:
        return dict(
            api_cache_ttl=float(env("EXCHANGE_API_CACHE_TTL") or "2"),
            api_rate=float(env("EXCHANGE_API_RATE") or "50"),
            api_burst=int(env("EXCHANGE_API_BURST") or "100"),
            api_buckets=env("EXCHANGE_API_BUCKETS"),
            api_rate_store=_rate_store(env("EXCHANGE_API_RATE_STORE")),
            api_rate_prefix=env("EXCHANGE_API_RATE_PREFIX") or "exchange:rate:",
            api_audit_inline=None if inline is None else inline == "1",
            api_refusal_window=float(env("EXCHANGE_API_REFUSAL_WINDOW") or "60"),
            dashboard_secret=env("EXCHANGE_DASHBOARD_SECRET"),
            metrics_token=env("EXCHANGE_METRICS_TOKEN") or None,
            catalogue_publisher=(env("EXCHANGE_CATALOGUE_PUBLISHER") or "").strip() or "政务数据共享交换平台")
    except ValueError as exc:
        raise ConfigError(f"an API setting is not a number ({exc}): check EXCHANGE_API_CACHE_TTL, "
                          "EXCHANGE_API_RATE, EXCHANGE_API_BURST, EXCHANGE_API_REFUSAL_WINDOW") from None


RATE_STORES = ("redis://", "rediss://", "unix://")


def _rate_store(url: str | None) -> str | None:
    """EXCHANGE_API_RATE_STORE: empty for this host's own buckets, else a Redis URL."""
    if not url or not url.strip():
        return None
    if not url.strip().startswith(RATE_STORES):
        raise ConfigError(f"EXCHANGE_API_RATE_STORE must be a Redis URL ({', '.join(RATE_STORES)}…) "
                          "or empty for this host's own rate limits")
    return url.strip()


def reset_settings() -> None:
    """Forget the cached settings (tests change the environment)."""
    get_settings.cache_clear()
