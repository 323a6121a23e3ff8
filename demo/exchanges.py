"""Several whole exchanges on 127.0.0.1, each as a separate host would run it: its own home,
catalogue, signing key, log origin and API port. Every command is a subprocess of the project's
`exchange` CLI (or `airflow`) with that exchange's environment; nothing here opens a catalogue.
Used by tests/federation and the two-level demo.

    district = Exchange("district", folder)           # EXCHANGE_LOG_ORIGIN district.exchange.test
    district.register_source("district_smr", "business_licence.district_smr")
    district.publish("district_smr")                   # exchange run district_smr --local
    district.serve()                                   # exchange serve --port P, until close()
"""
from __future__ import annotations

import atexit
import json as jsonlib
import os
import socket
import sqlite3
import subprocess
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
TEMPLATE = ROOT / "demo" / "registrations" / "smr_business_licence.toml"
PASSPHRASE = "harness passphrase: not a real secret"
PURPOSE = "DJ-SCJG-0003"           # a service item that asks for a business licence
TABLE = "yyzz_djxx"                # the synthetic silo's table (demo/synth.py)
VALID, REVOKED = "存续", "吊销"     # the silo's status values (the registration's status_map)
_KEEP = {"EXCHANGE_TODAY"}          # the caller's notion of today travels to every exchange
_LIVE: weakref.WeakSet[Exchange] = weakref.WeakSet()


class CommandFailed(RuntimeError):
    """A command of an exchange exited non-zero (check=True)."""

    def __init__(self, exchange: str, args: list[str], proc: subprocess.CompletedProcess[str]):
        self.returncode, self.stdout, self.stderr = proc.returncode, proc.stdout, proc.stderr
        super().__init__(f"[{exchange}] {' '.join(args)} -> exit {proc.returncode}\n"
                         f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")


def free_port() -> int:
    """A port free on 127.0.0.1 now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Source:
    id: str
    dataset: str
    silo: Path
    registration: Path
    planted: frozenset[int] = frozenset()     # silo IDs with a planted defect or variation
    runs: int = 0


class Exchange:
    """One exchange: home = folder/name; catalogue = SQLite in its home unless catalog_url."""

    def __init__(self, name: str, folder: Path, *, origin: str | None = None,
                 catalog_url: str | None = None, port: int | None = None,
                 passphrase: str = PASSPHRASE, env: dict[str, str] | None = None):
        self.name = name
        self.home = (Path(folder) / name).resolve()
        self.home.mkdir(parents=True, exist_ok=True)
        self.origin = origin or f"{name}.exchange.test"
        self.port = port or free_port()
        self.catalog_url = catalog_url or f"sqlite:///{self.home / 'catalog.db'}"
        self.airflow_home = self.home / "airflow"
        self.sources: dict[str, Source] = {}
        self.role_fallbacks: list[str] = []     # departments made consumer: `--role exchange` refused
        self._proc: subprocess.Popen[bytes] | None = None
        self._airflow_ready = False
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("EXCHANGE_", "AIRFLOW_", "AIRFLOW__")) or k in _KEEP}
        self.env = {**base, "EXCHANGE_ROOT": str(ROOT), "EXCHANGE_HOME": str(self.home),
                    "AIRFLOW_HOME": str(self.airflow_home), "AIRFLOW_CONFIG": str(ROOT / "airflow.cfg"),
                    "GX_ANALYTICS_ENABLED": "false", "SCARF_ANALYTICS": "false", "DO_NOT_TRACK": "1",
                    "EXCHANGE_KEY_PASSPHRASE": passphrase, "EXCHANGE_CATALOG_URL": self.catalog_url,
                    "EXCHANGE_LOG_ORIGIN": self.origin, "EXCHANGE_DASHBOARD_URL": self.url,
                    **(env or {})}

    def __repr__(self) -> str:
        return f"Exchange({self.name!r}, {self.url}, {self.origin})"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # commands
    def run(self, *args: str, check: bool = True, json: bool = False, env: dict[str, str] | None = None,
            timeout: float = 300) -> Any:
        """`exchange ARGS` here. check=True: stdout (parsed when json=True; --json is added),
        CommandFailed on a non-zero exit. check=False: the CompletedProcess, whatever the exit."""
        argv = [str(BIN / "exchange"), *args, *(["--json"] if json and "--json" not in args else [])]
        proc = subprocess.run(argv, env={**self.env, **(env or {})}, cwd=ROOT, capture_output=True,
                              text=True, timeout=timeout)
        if not check:
            return proc
        if proc.returncode:
            raise CommandFailed(self.name, list(args), proc)
        return jsonlib.loads(proc.stdout) if json else proc.stdout

    def create_key(self) -> str:
        """The first signing key (`exchange keys create`); its kid."""
        return str(self.run("keys", "create", json=True)["active"])

    def kid(self) -> str:
        """The active signing key's kid (`exchange keys list --json`)."""
        return next(k["kid"] for k in self.run("keys", "list", json=True) if k["status"] == "active")

    def add_department(self, dept: str, name: str, role: str = "consumer") -> str:
        """`exchange departments add`; the role given. A CLI without role `exchange` yet makes
        the department a consumer (kept in role_fallbacks)."""
        proc = self.run("departments", "add", dept, name, "--role", role, check=False)
        if proc.returncode == 2 and role == "exchange" and "invalid choice" in proc.stderr:
            self.role_fallbacks.append(dept)
            self.run("departments", "add", dept, name, "--role", "consumer")
            return "consumer"
        if proc.returncode:
            raise CommandFailed(self.name, ["departments", "add", dept], proc)
        return role

    def issue_key(self, dept: str) -> str:
        """A new API key of the department (`exchange credentials issue`)."""
        return str(self.run("credentials", "issue", dept, json=True)["key"])

    def grant(self, dept: str, dataset: str, purposes: tuple[str, ...] = (PURPOSE,),
              fields: list[str] | None = None) -> int:
        args = ["grants", "add", dept, dataset, *(a for p in purposes for a in ("--purpose", p))]
        out = self.run(*args, *(["--fields", ",".join(fields)] if fields else []), json=True)
        return int(out["grant"])

    def has_command(self, name: str) -> bool:
        """Whether this tree's CLI knows a subcommand (federation commands arrive one by one)."""
        return self.run(name, "--help", check=False).returncode == 0

    def agree(self, peer_dept: str, dataset: str) -> Any:
        """An exchange-to-exchange agreement on a conditional dataset (`exchange agreements add`)."""
        return self.run("agreements", "add", peer_dept, dataset, json=True)

    # peers (the mirror side): the peer's key in an Airflow connection, pinned by fingerprint
    def connect(self, conn_id: str, password: str, conn_type: str = "http") -> str:
        """An Airflow connection for every later command here, as `AIRFLOW_CONN_<ID>` JSON in
        this exchange's environment (what `airflow connections add` would store); its id."""
        self.env[f"AIRFLOW_CONN_{conn_id.upper()}"] = jsonlib.dumps({"conn_type": conn_type,
                                                                     "password": password})
        return conn_id

    def peer_add(self, name: str, peer: Exchange, key: str, conn_id: str | None = None) -> dict:
        """`exchange peers add NAME URL --fingerprint=KID --credential CONN`: the peer's active
        kid (asked of the peer, as its operator hands it over) pinned, its key (that of this
        exchange's department there) in the connection `peer_<name>`."""
        conn = self.connect(conn_id or f"peer_{name}", key)
        return dict(self.run("peers", "add", name, peer.url, f"--fingerprint={peer.kid()}",  # a kid may begin with -
                             "--credential", conn, json=True))

    def sync(self, peer: str) -> dict:
        """`exchange peers sync PEER --json`: its summary, with "exit" (0 ok, 8 refused, 3
        unreachable); CommandFailed if it printed no summary."""
        proc = self.run("peers", "sync", peer, "--json", check=False)
        try:
            summary = dict(jsonlib.loads(proc.stdout))
        except ValueError:
            raise CommandFailed(self.name, ["peers", "sync", peer], proc) from None
        return {**summary, "exit": proc.returncode}

    # a synthetic business-licence silo, its source and its publications
    def add_source(self, source_id: str, dataset: str, *, rows: int = 40, seed: int = 7,
                   sharing: str = "unconditional", title: str | None = None,
                   defect_rate: float = 0.05) -> Source:
        """A silo of `rows` licences (demo/synth.py, Faker zh_CN, seeded; defect_rate of them
        with planted defects, quarantined) in this home's silos/, and the demo registration
        renamed (id, dataset, sharing, title) in its registrations/; not in the catalogue yet:
        sync_sources() or register_source(). (A silo with no defect at all trips a bug of
        delta runs today: exchange/unreported.py IndexError when last run quarantined nothing.)"""
        from demo.synth import business_licences, write_sqlite  # lazy: numpy, pyarrow, Faker

        silo = self.home / "silos" / f"{source_id}.db"
        silo.parent.mkdir(parents=True, exist_ok=True)
        table, manifest = business_licences(rows, seed=seed, defect_rate=defect_rate, cosmetic_rate=0.0)
        write_sqlite(table, silo)
        text = (TEMPLATE.read_text("utf-8").replace("{silo}", str(silo))
                .replace('id = "smr_business_licence"', f'id = "{source_id}"\ndataset = "{dataset}"')
                .replace('sharing = "unconditional"', f'sharing = "{sharing}"'))
        if title:
            text = text.replace('title = "营业执照 (市场监督管理局)"', f'title = "{title}"')
        reg = self.registrations / f"{source_id}.toml"
        reg.parent.mkdir(parents=True, exist_ok=True)
        reg.write_text(text, encoding="utf-8")
        self.sources[source_id] = src = Source(source_id, dataset, silo, reg,
                                                   frozenset(i for ids in manifest.values() for i in ids))
        return src

    @property
    def registrations(self) -> Path:
        return self.home / "registrations"

    def sync_sources(self) -> list[dict]:
        """Every registration of registrations/ into the catalogue (`exchange sources sync`)."""
        return list(self.run("sources", "sync", str(self.registrations), json=True))

    def register_source(self, source_id: str, dataset: str, **silo: Any) -> Source:
        """add_source(), then `exchange register` (checks the file, tests the silo, previews)."""
        src = self.add_source(source_id, dataset, **silo)
        self.run("register", str(src.registration), json=True)
        return src

    def publish(self, source_id: str) -> dict:
        """`exchange run SOURCE --local` (no Airflow) under a fresh run key; its summary."""
        src = self.sources[source_id]
        src.runs += 1
        return dict(self.run("run", source_id, "--local", "--key", f"harness-{src.runs}", json=True))

    def holders(self, source_id: str, status: str = VALID) -> list[str]:
        """Holder codes (USCC) of the silo's sound licences (no planted defect) with this
        status, in silo order."""
        src = self.sources[source_id]
        with sqlite3.connect(src.silo) as db:
            rows = db.execute(f"SELECT ID, TYSHXYDM FROM {TABLE} WHERE DJZT = ? ORDER BY ID", (status,))
            return [h for i, h in rows if i not in src.planted]

    def change_licence(self, source_id: str, holder: str, **columns: str) -> None:
        """Change one holder's licence in the silo (silo column names: DJZT, QYMC, ZS …)."""
        sets = ", ".join(f"{c} = ?" for c in columns)
        with sqlite3.connect(self.sources[source_id].silo) as db:
            n = db.execute(f"UPDATE {TABLE} SET {sets}, GXSJ = ? WHERE TYSHXYDM = ?",
                           (*columns.values(), time.strftime("%Y-%m-%dT%H:%M:%S"), holder)).rowcount
        if n != 1:
            raise ValueError(f"[{self.name}] {source_id}: {n} silo rows for holder {holder}")

    def revoke_licence(self, source_id: str, holder: str | None = None) -> str:
        """Revoke one valid licence in the silo (status 吊销); its holder. Publish to take effect."""
        holder = holder or self.holders(source_id)[0]
        self.change_licence(source_id, holder, DJZT=REVOKED)
        return holder

    # the API
    def serve(self, timeout: float = 60) -> Exchange:
        """`exchange serve --port P` in the background (log: home/serve.log) until close()."""
        if self._proc and self._proc.poll() is None:
            return self
        log = open(self.home / "serve.log", "ab")     # noqa: SIM115  (the child writes it)
        self._proc = subprocess.Popen([str(BIN / "exchange"), "serve", "--host", "127.0.0.1",
                                       "--port", str(self.port)], env=self.env, cwd=ROOT,
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        _LIVE.add(self)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self._proc.poll() is not None:
                raise RuntimeError(f"[{self.name}] exchange serve exited {self._proc.returncode}:\n"
                                   + self.serve_log()[-3000:])
            try:
                if requests.get(f"{self.url}/v1/keys/jwks.json", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.close()
        raise RuntimeError(f"[{self.name}] no answer on {self.url} after {timeout:.0f} s:\n"
                           + self.serve_log()[-3000:])

    def serve_log(self) -> str:
        path = self.home / "serve.log"
        return path.read_text("utf-8", errors="replace") if path.exists() else ""

    def close(self) -> None:
        """Stop the API (SIGTERM, then SIGKILL after 10 s)."""
        proc, self._proc = self._proc, None
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def __enter__(self) -> Exchange:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, key: str | None = None, **params: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return requests.get(self.url + path, headers=headers, params=params, timeout=30)

    def jwks(self) -> dict:
        """The public keys, over HTTP (GET /v1/keys/jwks.json)."""
        r = self.get("/v1/keys/jwks.json")
        r.raise_for_status()
        return dict(r.json())

    def key_material(self, dest: Path) -> tuple[Path, Path]:
        """This exchange's JWKS and signed key status fetched over HTTP into dest/<name>/, as a
        verifier holds them: (jwks.json, key-status.jws)."""
        folder = Path(dest) / self.name
        folder.mkdir(parents=True, exist_ok=True)
        status = self.get("/v1/keys/key-status.jws")
        status.raise_for_status()
        (folder / "jwks.json").write_text(jsonlib.dumps(self.jwks()), encoding="utf-8")
        (folder / "key-status.jws").write_text(status.text, encoding="utf-8")
        return folder / "jwks.json", folder / "key-status.jws"

    def lookup(self, key: str, holder: str, purpose: str = PURPOSE) -> dict:
        """POST /v1/holders/records as the key's department."""
        r = requests.post(f"{self.url}/v1/holders/records", params={"purpose": purpose},
                          json={"holder_id": holder}, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        r.raise_for_status()
        return dict(r.json())

    def export(self, key: str, record_id: str, dest: Path, purpose: str = PURPOSE) -> Path:
        """`exchange export RECORD -o DEST` as the key's department (EXCHANGE_API_KEY)."""
        self.run("export", record_id, "--purpose", purpose, "-o", str(dest), env={"EXCHANGE_API_KEY": key})
        return Path(dest)

    def verify(self, bundle: Path, jwks: Path, key_status: Path | None = None) -> subprocess.CompletedProcess[str]:
        """`exchange verify BUNDLE --jwks J [--key-status K] --json`: exit 0 verified, 8 not."""
        extra = ["--key-status", str(key_status)] if key_status else []
        return self.run("verify", str(bundle), "--jwks", str(jwks), *extra, "--json", check=False)

    # Airflow, per exchange (AIRFLOW_HOME in its home)
    def airflow(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        from base.airflow_env import fernet_key  # light: one file beside Airflow's database

        env = {**self.env, "AIRFLOW__CORE__FERNET_KEY": fernet_key(self.airflow_home)}
        proc = subprocess.run([str(BIN / "airflow"), *args], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode:
            raise CommandFailed(self.name, ["airflow", *args], proc)
        return proc

    def airflow_dags_test(self, dag_id: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`airflow dags test DAG` under this exchange's Airflow home (`airflow db migrate` first)."""
        if not self._airflow_ready:
            self.airflow("db", "migrate")
            self._airflow_ready = True
        return self.airflow("dags", "test", dag_id, check=check)


@atexit.register
def _stop_all() -> None:
    for ex in list(_LIVE):
        ex.close()


# the federation's test topology: the city and the province both peer with the district
EXCHANGE_ROLE = "exchange"
UNCONDITIONAL = "business_licence.district_smr"
CONDITIONAL = "business_licence.district_smr_restricted"


@dataclass
class Federation:
    district: Exchange
    city: Exchange
    province: Exchange
    keys: dict[str, str] = field(default_factory=dict)      # "exchange/department" -> API key
    datasets: dict[str, str] = field(default_factory=dict)  # "unconditional"/"conditional" -> dataset id
    holder: str = ""                                         # a valid holder of the unconditional dataset
    notes: list[str] = field(default_factory=list)          # what this tree could not set up yet
    setup_seconds: float = 0.0

    @property
    def all(self) -> tuple[Exchange, Exchange, Exchange]:
        return self.district, self.city, self.province

    def close(self) -> None:
        for ex in self.all:
            ex.close()


def district_sources(ex: Exchange) -> None:
    """A district's key and its two sources in the catalogue (not yet published): UNCONDITIONAL
    and CONDITIONAL, seeded silos of business licences."""
    ex.create_key()
    ex.add_source("district_smr", UNCONDITIONAL, seed=101, title="营业执照 (区市场监管局)")
    ex.add_source("district_smr_restricted", CONDITIONAL, seed=202, sharing="conditional",
                  title="营业执照 (区市场监管局, 有条件共享)")
    ex.sync_sources()


def _district(ex: Exchange, fed: Federation) -> None:
    district_sources(ex)

    def publish() -> None:
        ex.publish("district_smr")
        ex.publish("district_smr_restricted")

    def departments() -> None:     # meanwhile (the catalogue takes concurrent writers: WAL)
        for dept, name, role in (("city-ex", "市级平台", EXCHANGE_ROLE), ("province-ex", "省级平台", EXCHANGE_ROLE),
                                 ("district-tax", "区税务局", "consumer"), ("district-audit", "区审计局", "auditor")):
            ex.add_department(dept, name, role)
            fed.keys[f"district/{dept}"] = ex.issue_key(dept)
        ex.serve()

    with ThreadPoolExecutor(2) as pool:
        for f in [pool.submit(publish), pool.submit(departments)]:
            f.result()
    if ex.role_fallbacks:
        fed.notes.append(f"departments add --role exchange refused: {ex.role_fallbacks} made consumer")
    if ex.has_command("agreements"):
        ex.agree("province-ex", CONDITIONAL)      # the province may mirror the conditional dataset
    else:
        fed.notes.append("no `exchange agreements` yet: no agreement for province-ex on " + CONDITIONAL)


def _province(ex: Exchange, fed: Federation) -> None:
    ex.create_key()
    ex.add_department("province-market", "省市场监管厅")
    fed.keys["province/province-market"] = ex.issue_key("province-market")
    ex.serve()


def _city(ex: Exchange, fed: Federation) -> None:
    ex.create_key()
    ex.serve()


def three_exchanges(folder: Path, catalog_urls: dict[str, str] | None = None) -> Federation:
    """district/city/province under folder, set up side by side and served. The district
    publishes UNCONDITIONAL and CONDITIONAL (version 1 each) and has the peer exchange
    departments city-ex and province-ex (role exchange), district-tax (consumer) and
    district-audit (auditor), each with a key; the province has province-market (consumer) with
    a key and no grant yet: `grants add` needs the dataset, which exists there once mirrored."""
    urls = catalog_urls or {}
    t0 = time.monotonic()
    fed = Federation(*(Exchange(n, folder, catalog_url=urls.get(n)) for n in ("district", "city", "province")),
                     datasets={"unconditional": UNCONDITIONAL, "conditional": CONDITIONAL})
    try:
        with ThreadPoolExecutor(3) as pool:
            for f in [pool.submit(step, ex, fed) for step, ex in zip((_district, _city, _province), fed.all,
                                                                     strict=True)]:
                f.result()
    except BaseException:
        fed.close()
        raise
    fed.holder = fed.district.holders("district_smr")[0]
    fed.setup_seconds = time.monotonic() - t0
    return fed
