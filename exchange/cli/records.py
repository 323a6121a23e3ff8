"""Catalogue and records: datasets, lookup, export, verify, runs."""
from __future__ import annotations

import json
from pathlib import Path

from exchange.cli import catalog, table
from exchange.errors import ConfigError


def cmd_datasets(args) -> int:
    rows = catalog().datasets()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    else:
        table("Datasets", rows, ["dataset", "title", "sharing", "update_cycle", "version",
                                  "records", "published_at"])
    return 0


def cmd_lookup(args) -> int:
    from schemas.normalize import code_key_scalar

    key = code_key_scalar(args.holder_id) or ""
    cat = catalog()
    rows = cat.lookup(key)
    cat.audit(args.department, args.purpose, "lookup", key, "found" if rows else "none",
                  {"records": len(rows)})
    if args.json:
        print(json.dumps({"holder": key, "records": rows}, ensure_ascii=False, indent=1))
    elif rows:
        table(f"Records held for {key}", rows, ["record_id", "title", "licence_number",
                                                 "holder_name", "status", "disputed", "valid_to", "version"])
    else:
        print(f"no records held for {key}")
    return 0


def cmd_export(args) -> int:
    cat = catalog()
    bundle = cat.bundle(args.record_id)
    cat.audit(args.department, args.purpose, "export", args.record_id, "exported")
    text = json.dumps(bundle, ensure_ascii=False, indent=1)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        msg = {"record_id": args.record_id, "written": args.output}
        print(json.dumps(msg) if args.json else f"wrote the bundle of {args.record_id} to {args.output}")
    else:
        print(text)
    return 0


def cmd_verify(args) -> int:
    from catalog.key_status import KEY_STATUS_FILE, read_key_status
    from catalog.verify import VERIFY_STEPS, verify_bundle
    from exchange.settings import get_settings

    jwks_path = Path(args.jwks) if args.jwks else get_settings().jwks_path
    status_path = Path(args.key_status) if args.key_status else jwks_path.with_name(KEY_STATUS_FILE)
    try:
        bundle = json.loads(Path(args.file).read_text(encoding="utf-8"))
        jwks = json.loads(jwks_path.read_text(encoding="utf-8"))
        key_status = read_key_status(status_path)
    except FileNotFoundError as exc:
        raise ConfigError(f"cannot read {exc.filename}: give the bundle file and --jwks PATH") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not JSON: {exc}") from None
    status_of = None
    if args.online:
        cat = catalog()
        # called after steps 1-6: record_id, version and leaf_hash are then the signed ones
        status_of = lambda b: cat.record_status(b["record_id"], b["version"], b["leaf_hash"])  # noqa: E731
    result = verify_bundle(bundle, jwks, key_status, status_of)
    ran = [(n, name) for n, name in VERIFY_STEPS if n in result.steps]
    head, licence = result.head, result.record.get("licence_number")
    if args.json:
        print(json.dumps({"verified": True, "record_id": result.record_id, "licence_number": licence,
                          "leaf_index": result.leaf_index, "dataset": head["dataset"],
                          "version": head["version"], "kid": result.kid,
                          "steps": [name for _, name in ran], "status": result.status,
                          "key_compromised": result.compromised_key is not None,
                          "unsigned": result.unsigned}, ensure_ascii=False))
        return 0
    for number, name in ran:
        print(f"  step {number}: {name} ... ok")
    note = (f" (compromised from {result.compromised_key['compromised_at']}; this head predates it)"
            if result.compromised_key else "")
    print(f"verified: the signed record {result.record_id} (licence {licence}) is leaf {result.leaf_index} "
          f"of {head['dataset']} version {head['version']}, signed by key {result.kid}{note}")
    if result.unsigned:
        fields = ", ".join(f"{k}={v!r}" for k, v in result.unsigned.items() if k != "unsigned")
        print(f"  unsigned (not covered by the signature, not checked): {fields}")
    if result.status:
        print(f"  the exchange says now: {result.status['status']} since {result.status.get('since')}")
    else:
        print("  step 7 (record still valid) was not run: add --online to ask the exchange")
    return 0


def cmd_runs(args) -> int:
    rows = catalog().runs(args.source, args.limit)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1, default=str))
    else:
        table("Runs", rows, ["id", "source_id", "state", "extracted", "accepted",
                              "quarantined", "version", "started_at", "message"])
    return 0


def consumer(sp):
    sp.add_argument("--department", default="operator-cli", help="who is asking")
    sp.add_argument("--purpose", default="operator lookup",
                    help="why: a service-item code or case number")
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
    sp.add_argument("--jwks", help="public key set (default: the exchange's jwks.json)")
    sp.add_argument("--key-status", help="signed key status document (default: key-status.jws "
                                         "beside the JWKS, if present)")
    sp.add_argument("--online", action="store_true", help="also ask the catalogue whether the "
                                                          "record is still valid (step 7)")
    sp = add("runs", cmd_runs, "recent pipeline runs")
    sp.add_argument("--source")
    sp.add_argument("--limit", type=int, default=20)
