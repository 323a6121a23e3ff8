"""Catalogue and records: datasets, lookup, export, verify, runs."""
from __future__ import annotations

import json
import os
from pathlib import Path

from base import times
from base.errors import ConfigError
from base.settings import get_settings
from cli import catalog, ledger, table
from trust.cli import load, report
from trust.errors import InputError
from trust.verify import read_key_status, verify_bundle


def cmd_datasets(args) -> int:
    rows = catalog().datasets()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    else:
        table("Datasets", rows, ["dataset", "title", "sharing", "update_cycle", "version",
                                  "records", "published_at"])
    return 0


def _requests():
    from exchange import department_requests  # lazy: CLI start (the catalogue imports pyarrow)
    return department_requests


def _token(args) -> str | None:
    return args.key or os.environ.get("EXCHANGE_API_KEY")


def cmd_lookup(args) -> int:
    out = _requests().lookup(_token(args), args.department, args.purpose, args.holder_id)
    key, rows = out["holder"], out["records"]
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=1))
    elif rows:
        table(f"Records held for {key}", rows, ["record_id", "title", "licence_number",
                                                 "holder_name", "status", "disputed", "valid_to", "version"])
    else:
        print(f"no records held for {key} that department may see for this purpose")
    return 0


def cmd_export(args) -> int:
    bundle = _requests().bundle(_token(args), args.department, args.purpose, args.record_id)
    text = json.dumps(bundle, ensure_ascii=False, indent=1)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        msg = {"record_id": args.record_id, "written": args.output, "disclosure": bundle.get("disclosure")}
        print(json.dumps(msg) if args.json else f"wrote the bundle of {args.record_id} to {args.output}"
              + ("" if bundle.get("verifiable", True) else " (only the granted fields: not verifiable)"))
    else:
        print(text)
    return 0


def cmd_verify(args) -> int:
    jwks_path = args.jwks or get_settings().jwks_path
    material = None
    if not args.jwks and (args.online or not Path(jwks_path).exists()):
        material = catalog().key_material()     # the catalogue's, as every API host serves it
    try:
        if material is None:
            bundle, jwks, key_status = load(args.file, jwks_path, args.key_status)
        else:
            bundle = json.loads(Path(args.file).read_text(encoding="utf-8"))
            jwks = json.loads(material[0])
            key_status = read_key_status(args.key_status) if args.key_status else material[1]
    except InputError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {exc.filename}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not JSON: {exc}") from None
    status_of = None
    if args.online:
        cat = catalog()
        # called after steps 1-6: record_id, version and leaf_hash are then the signed ones
        status_of = lambda b: cat.record_status(b["record_id"], b["version"], b["leaf_hash"])  # noqa: E731
    report(verify_bundle(bundle, jwks, key_status, status_of), args.json,
           "step 7 (record still valid) was not run: add --online to ask the exchange")
    return 0


def cmd_runs(args) -> int:
    led = ledger()
    led.reap_orphans(args.source)     # runs whose `exchange run` process is gone: failed
    rows = led.runs(args.source, args.limit)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1, default=times.json_default))
    else:
        table("Runs", rows, ["id", "source_id", "state", "extracted", "accepted",
                              "quarantined", "version", "started_at", "message"])
    return 0


def consumer(sp):
    """Asks as a department, under the API's rules (catalog/serving/consumer.py), audited with the OS account."""
    sp.add_argument("--key", help="the department's exchange key exk_… (default: $EXCHANGE_API_KEY, "
                                  "which keeps it out of the process list)")
    sp.add_argument("--department", help="the department asking; must be the key's own")
    sp.add_argument("--purpose", help="why: a service-item code (exchange items) or case:NUMBER")
    return sp


def register(add) -> None:
    add("datasets", cmd_datasets, "list the catalogue")
    consumer(add("lookup", cmd_lookup, "records held for a holder (USCC or resident ID)")
             ).add_argument("holder_id")
    sp = add("export", cmd_export, "write a record's verifiable bundle")
    sp.add_argument("record_id")
    sp.add_argument("-o", "--output", help="file to write (default: stdout)")
    consumer(sp)
    sp = add("verify", cmd_verify, "check a bundle offline against the public key set")
    sp.add_argument("file")
    sp.add_argument("--jwks", help="public key set (default: the exchange's jwks.json; with --online "
                                   "or without that file, the catalogue's)")
    sp.add_argument("--key-status", help="signed key status document (default: key-status.jws "
                                         "beside the JWKS, if present)")
    sp.add_argument("--online", action="store_true", help="also ask the catalogue whether the "
                                                          "record is still valid (step 7)")
    sp = add("runs", cmd_runs, "recent pipeline runs")
    sp.add_argument("--source")
    sp.add_argument("--limit", type=int, default=20)
