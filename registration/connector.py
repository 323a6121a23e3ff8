"""What a registration's [connector] may say: one frozen dataclass per kind, each key checked
for its type and range without importing a driver (the DAG file reads registrations).

A file silo (a drop folder, a SQLite file) must lie under one of the silo roots
(EXCHANGE_SILO_ROOTS, default $EXCHANGE_HOME/drops and $EXCHANGE_HOME/silos); a relative path is
taken under the first. Paths are resolved, symbolic links followed, before they are compared.
"""
from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from dataclasses import fields as dc_fields
from pathlib import Path

from base import tomlfile
from base.errors import ConfigError, UnknownName
from base.settings import get_settings

AUTH_KINDS = ("none", "bearer", "api_key", "hmac")
PAGINATION = ("page", "offset", "cursor")
METHODS = ("GET", "POST")
FORMATS = {".csv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".jsonl": "jsonl", ".ndjson": "jsonl"}
MODES = ("snapshot", "delta")
# the kind of registration value a settings field takes, by its annotation
KIND_OF = {"str": "string", "str | None": "string", "dict | None": "table", "int": "integer", "float": "number",
           "bool": "boolean", "tuple[str, ...]": "array of strings", "dict": "table"}
LIMITS = {"batch_rows": (1, 10_000_000), "page_size": (1, 100_000), "first_page": (0, 1_000_000),
          "attempts": (1, 100), "max_pages": (1, 100_000_000), "connect_timeout": (0.001, 3_600),
          "read_timeout": (0.001, 3_600), "backoff": (0, 3_600), "max_backoff": (0, 86_400),
          "max_retry_after": (0, 86_400), "settle_seconds": (0, 86_400)}
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
OWN_SECRETS = ("EXCHANGE_", "AIRFLOW")          # the exchange's and Airflow's own variables
FILE_PATTERN = re.compile(r"[^/\\\x00]{1,200}")   # a name pattern inside the drop folder
SQLITE_URL = re.compile(r"sqlite(\+\w+)?:", re.I)
KEY = "connector"
PER_RUN = frozenset({"since", "part"})       # set for each run, never by a registration


def _values(cls, cfg: dict, where: str, skip: set[str] = frozenset()) -> dict:
    """The registration's keys for `cls`, each checked against its field's annotation."""
    tomlfile.typed(cfg, "table", KEY, where)
    known = {f.name for f in dc_fields(cls)} - skip | {"kind"}
    tomlfile.check_keys(cfg, where, known, table=KEY)
    out = {}
    for f in dc_fields(cls):
        if f.name not in cfg or f.name in skip:
            continue
        key, kind = f"{KEY}.{f.name}", KIND_OF[f.type]
        value = tomlfile.typed(cfg[f.name], kind, key, where)
        if f.name in LIMITS:
            tomlfile.between(value, *LIMITS[f.name], key, where, kind)
        out[f.name] = float(value) if kind == "number" else tuple(value) if kind.startswith("array") else value
    return out


def silo_path(value: str, key: str, where: str) -> Path:
    """The resolved path of a file silo, which must lie under one of the silo roots."""
    roots = get_settings().silo_roots
    try:
        path = Path(value)
        full = (path if path.is_absolute() else roots[0] / path).resolve()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{where}: {key} {value!r} is not a usable path ({exc})") from None
    if not any(full == root or full.is_relative_to(root) for root in roots):
        raise ConfigError(
            f"{where}: {key} {value!r} leads outside the silo roots ({', '.join(map(str, roots))}): "
            "a file silo must lie under one of them (EXCHANGE_SILO_ROOTS); a relative path is taken "
            "under the first")
    return full


def sqlite_file(url, key: str, where: str) -> Path:
    """The file of a SQLite URL (an sqlalchemy URL), under the silo roots."""
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or "uri" in url.query:
        raise ConfigError(f"{where}: {key} must name a SQLite file as sqlite:///PATH, not "
                          f"{database or 'an in-memory database'!r}")
    return silo_path(database, key, where)


def _sqlite_url(text: str, where: str) -> str:
    from sqlalchemy.engine import make_url  # lazy: only a sqlite URL needs SQLAlchemy

    try:
        url = make_url(text)
    except Exception:  # noqa: BLE001 - any unparsable URL is the same refusal
        raise ConfigError(f"{where}: {KEY}.url {text!r} is not a database URL") from None
    path = sqlite_file(url, f"{KEY}.url", where)
    return url.set(database=str(path)).render_as_string(hide_password=False)


@dataclass(frozen=True)
class SqlSettings:
    table: str
    url: str | None = None          # development only; real silos use conn_id
    conn_id: str | None = None      # an Airflow connection
    batch_rows: int = 65_536
    watermark: str | None = None    # a change-timestamp column: incremental pulls
    key: str | None = None          # the silo's primary key (merging incremental pulls)
    since: str | None = None        # the committed watermark, set per run
    adbc: bool = True               # use an ADBC driver where installed
    part: dict | None = None        # the run's partition (connectors/partitions.py), set per run

    KNOWN = ("kind", "url", "conn_id", "table", "batch_rows", "watermark", "key", "adbc")

    @classmethod
    def from_registration(cls, cfg: dict, where: str = "registration") -> SqlSettings:
        values = _values(cls, cfg, where, skip=PER_RUN)
        if "table" not in values or not (values.get("url") or values.get("conn_id")):
            raise ConfigError(f"{where}: a sql connector needs 'table' and 'conn_id' (or 'url' for development)")
        tomlfile.text(values["table"], f"{KEY}.table", where, 128)
        if values.get("watermark") and not values.get("key"):
            raise ConfigError(f"{where}: an incremental sql connector (watermark) also needs 'key', the primary key")
        if values.get("url") and SQLITE_URL.match(values["url"]):
            values["url"] = _sqlite_url(values["url"], where)
        return cls(**values)


@dataclass(frozen=True)
class HttpSettings:
    fields: tuple[str, ...]            # the silo's field names: the shape every record must have
    url: str | None = None             # base URL (development); else the connection's host
    conn_id: str | None = None         # Airflow connection: host = base URL, password = secret
    path: str = ""
    method: str = "GET"                # POST sends the paging parameters as a JSON body
    params: dict = field(default_factory=dict)
    records: str = "data"              # dotted path of the record list in each page
    pagination: str = "page"
    page_param: str = "page"
    size_param: str = "page_size"
    first_page: int = 1
    offset_param: str = "offset"
    limit_param: str = "limit"
    cursor_param: str = "cursor"
    next_cursor: str = "next_cursor"   # dotted path of the next cursor (null/"" at the end)
    page_size: int = 500
    auth: str = "none"
    auth_header: str | None = None     # header for api_key / hmac
    secret_env: str | None = None      # development: an environment variable with the secret
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    attempts: int = 6
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 120.0
    max_pages: int = 100_000
    watermark: str | None = None       # ISO-8601 text field: incremental pulls
    since_param: str = "updated_since"
    key: str | None = None
    total: str | None = None           # dotted path of the record count in a page (planning a split)
    since: str | None = None
    part: dict | None = None

    @classmethod
    def from_registration(cls, cfg: dict, where: str = "registration") -> HttpSettings:
        values = _values(cls, cfg, where, skip=PER_RUN)
        if not values.get("fields") or not (values.get("url") or values.get("conn_id")):
            raise ConfigError(f"{where}: an http connector needs 'fields' and 'conn_id' (or 'url' for development)")
        if values.get("pagination", "page") not in PAGINATION:
            raise UnknownName("pagination", values["pagination"], PAGINATION, where=f"{where}: {KEY}.pagination")
        if values.get("auth", "none") not in AUTH_KINDS:
            raise UnknownName("auth", values["auth"], AUTH_KINDS, where=f"{where}: {KEY}.auth")
        if values.get("method", "GET").upper() not in METHODS:
            raise UnknownName("method", values["method"], METHODS, where=f"{where}: {KEY}.method")
        values["method"] = values.get("method", "GET").upper()
        if values.get("watermark") and not values.get("key"):
            raise ConfigError(f"{where}: an incremental http connector (watermark) also needs 'key'")
        if values.get("url") and not re.match(r"https?://[^/\s]", values["url"], re.I):
            raise ConfigError(f"{where}: {KEY}.url {values['url']!r} is not allowed: an http(s):// URL")
        for name, value in values.get("params", {}).items():
            if not (isinstance(value, (str, bool)) or tomlfile.KINDS["number"](value)):
                raise tomlfile.wrong(where, tomlfile.key_of(f"{KEY}.params", name),
                                     "a string, a number or a boolean", value)
        env = values.get("secret_env")
        if env is not None:
            tomlfile.matching(env, ENV_NAME, f"{KEY}.secret_env", where, "the name of an environment variable")
            if env.upper().startswith(OWN_SECRETS):
                raise ConfigError(f"{where}: {KEY}.secret_env {env!r} is not allowed: the exchange's and "
                                  "Airflow's own variables are no silo's secret; name the silo's own "
                                  "variable, or use conn_id")
        return cls(**values)


@dataclass(frozen=True)
class FileDropSettings:
    path: str                          # the drop folder
    pattern: str = "*"
    format: str | None = None          # csv | xlsx | jsonl; default: by extension
    encoding: str | None = None        # declared; default: detected
    delimiter: str = ","
    sheet: str | None = None
    fields: tuple[str, ...] = ()       # expected columns (checked when given)
    mode: str = "snapshot"             # snapshot: new files are the whole silo; delta: upserts by key
    key: str | None = None
    batch_rows: int = 65_536
    settle_seconds: float = 0.0        # skip files modified more recently (still being written)
    part: dict | None = None

    @classmethod
    def from_registration(cls, cfg: dict, where: str = "registration") -> FileDropSettings:
        values = _values(cls, cfg, where, skip=PER_RUN)
        if "path" not in values:
            raise ConfigError(f"{where}: a files connector needs 'path', the drop folder")
        if values.get("mode", "snapshot") not in MODES:
            raise UnknownName("file drop mode", values["mode"], MODES, where=f"{where}: {KEY}.mode")
        if values.get("format") and values["format"] not in set(FORMATS.values()):
            raise UnknownName("file format", values["format"], set(FORMATS.values()), where=f"{where}: {KEY}.format")
        if values.get("mode") == "delta" and not values.get("key"):
            raise ConfigError(f"{where}: a files connector in delta mode needs 'key', the silo's primary key")
        if "pattern" in values:
            tomlfile.matching(values["pattern"], FILE_PATTERN, f"{KEY}.pattern", where,
                              "a file-name pattern inside the drop folder, without / or \\")
        if values.get("encoding") is not None:
            try:
                codecs.lookup(values["encoding"])
            except (LookupError, ValueError):
                raise ConfigError(f"{where}: {KEY}.encoding {values['encoding']!r} is not a known "
                                  "encoding (utf-8, gbk, gb18030 …)") from None
        if len(values.get("delimiter", ",")) != 1:
            raise ConfigError(f"{where}: {KEY}.delimiter {values['delimiter']!r} must be one character")
        values["path"] = str(silo_path(values["path"], f"{KEY}.path", where))
        return cls(**values)

    @property
    def watermark(self) -> str | None:      # files are never pulled by watermark
        return None


KINDS = {"sql": SqlSettings, "http": HttpSettings, "files": FileDropSettings}


def settings_for(cfg, where: str):
    """The settings of a registration's connector, every key checked; imports no driver."""
    tomlfile.typed(cfg, "table", KEY, where)
    if "kind" not in cfg:
        raise ConfigError(f"{where}: {KEY}.kind is missing; known: {sorted(KINDS)}")
    kind = tomlfile.typed(cfg["kind"], "string", f"{KEY}.kind", where)
    if kind not in KINDS:
        raise UnknownName("connector kind", kind, KINDS, where=f"{where}: {KEY}.kind")
    return KINDS[kind].from_registration(cfg, where)
