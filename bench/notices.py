"""Change notices (issue 20): a dataset published in full from a generated silo (bench/path.py),
then a version with `--changed` records changed at the source and `--subscribers` departments
subscribed to the dataset, each with its own endpoint on one receiver on 127.0.0.1 (HTTP/1.1,
keep-alive; bench/notice_receiver.py, in its own process). Times, in this process: the
version's publish stage; the fan-out (events built and signed, notices written); the delivery
passes until nothing is owed; from the end of the publish to the last notice the receiver took.
Prints the figures; the last line is JSON. Asserts nothing but that every notice arrived once and
a sample of signatures verifies.

    ./run bench notices --rows 100000 --changed 10000 --subscribers 100
"""
from __future__ import annotations

import base64
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from base.settings import ROOT
from bench.path import TODAY, silo
from bench.publish_timer import timed_publish

SOURCE, TABLE, SEED = "smr_business_licence", "yyzz_djxx", 20
ITEM = "DJ-SCJG-0003"


class _Receiver:
    """bench/notice_receiver.py in its own process (not sharing the deliverer's GIL)."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.notice_receiver"], cwd=ROOT,
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("port "):
            self.proc.kill()
            raise RuntimeError(f"the bench receiver did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/stats", timeout=30) as r:
            out = json.loads(r.read())
        out["sample"] = [(base64.b64decode(b), sig) for b, sig in out["sample"]]
        return out

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main(rows: int = 100_000, changed: int = 10_000, subscribers: int = 100) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-notices-") as tmp:
        home = Path(tmp) / "home"
        os.environ.update(EXCHANGE_HOME=str(home), EXCHANGE_KEY_PASSPHRASE="bench passphrase, not a secret")
        os.environ.pop("EXCHANGE_CATALOG_URL", None)
        path = home / "silos" / "silo.db"
        path.parent.mkdir(parents=True)
        roots = os.environ.get("EXCHANGE_SILO_ROOTS")
        os.environ["EXCHANGE_SILO_ROOTS"] = os.pathsep.join(filter(None, [roots, str(path.parent)]))
        shutil.copy(silo(rows), path)
        figures = measure(path, rows, changed, subscribers)
        for k, v in figures.items():
            print(f"{k:>28}: {v}")
        print(json.dumps(figures))
    return 0


def measure(path: Path, rows: int, changed: int, subscribers: int) -> dict:
    rx = _Receiver()
    try:
        return _measure(rx, path, rows, changed, subscribers)
    finally:
        rx.close()


def _measure(rx: _Receiver, path: Path, rows: int, changed: int, subscribers: int) -> dict:
    from base.settings import get_settings
    from bench.incremental import change
    from catalog.service import Catalog
    from catalog.serving.access import Access, Caller
    from catalog.serving.consumer import Consumer
    from catalog.serving.notices import NoticeBook
    from catalog.serving.subscriptions import Subscriptions, set_endpoint
    from catalog.signing.keys import KeyStore
    from exchange import stages
    from exchange.sources import store_file

    s = get_settings()
    KeyStore(s.keys_dir, s.key_passphrase()).create(exist_ok=True)
    s.sources_dir.mkdir(parents=True, exist_ok=True)
    template = (ROOT / "demo/registrations/smr_business_licence.toml").read_text("utf-8")
    (s.sources_dir / f"{SOURCE}.toml").write_text(template.replace("{silo}", str(path)), "utf-8")
    store_file(s.sources_dir / f"{SOURCE}.toml")
    t = time.perf_counter()
    first = stages.run_all(SOURCE, "full", TODAY)
    full_s = time.perf_counter() - t
    dataset = first["dataset"]

    catalog = Catalog(s.catalog_url, s.store)
    access = Access(catalog.engine)
    subs = Subscriptions(Consumer(catalog, access))
    for i in range(subscribers):
        dept = f"bench-sub-{i:03d}"
        access.add_department(dept, f"订阅部门 {i}")
        set_endpoint(catalog.engine, dept, f"{rx.url}/{dept}")
        subs.add(Caller(dept, "consumer", "bench"), ITEM, dataset=dataset, days=30)

    touched = change(path, changed / rows, 1)
    with timed_publish() as timed:
        second = stages.run_all(SOURCE, "changed", TODAY)
    keys = KeyStore(s.keys_dir, s.key_passphrase())
    t = time.perf_counter()
    from catalog.serving import notice_fanout

    owed = notice_fanout.fan_out(catalog, keys, dataset)
    fan_s = time.perf_counter() - t
    t = time.perf_counter()
    book, rng, passes = NoticeBook(catalog.engine), random.Random(SEED), 0
    from exchange.notice_delivery import deliver

    while True:
        passes += 1
        got = deliver(s, rng=rng, budget=10**9, catalog=catalog, book=book)
        if not got["departments"]:
            break
    deliver_s = time.perf_counter() - t
    heard = rx.stats()
    verified = _verify(heard["sample"], keys.jwks())
    records = owed // subscribers if subscribers else 0
    out = {"rows": rows, "records_changed_at_source": touched, "records_with_notices": records,
           "subscribers": subscribers, "notices": owed, "received": heard["received"],
           "distinct_received": heard["distinct_received"], "signatures_verified": verified,
           "full_run_s": round(full_s, 2),
           "version": second.get("version"), "publish_s": round(timed["publish_s"], 3),
           "fan_out_s": round(fan_s, 3), "deliver_s": round(deliver_s, 3), "delivery_passes": passes,
           "publish_to_last_delivery_s": round(heard["last"] - timed["published_at"], 3),
           "notices_per_s": round(heard["received"] / deliver_s) if deliver_s else None,
           "fan_out_per_s": round(owed / fan_s) if fan_s else None}
    out["ratio_to_publish"] = round(out["publish_to_last_delivery_s"] / timed["publish_s"], 2)
    return out


def _verify(sample: list[tuple[bytes, str]], jwks: dict) -> int:
    """Each sampled body's detached JWS, checked with joserfc against the JWKS."""
    from joserfc import jws
    from joserfc.jwk import KeySet

    keyset = KeySet.import_key_set(jwks)
    n = 0
    for body, signature in sample:
        head, _, sig = signature.split(".")
        compact = f"{head}.{base64.urlsafe_b64encode(body).rstrip(b'=').decode()}.{sig}"
        jws.deserialize_compact(compact, keyset, algorithms=["EdDSA"])
        n += 1
    return n
