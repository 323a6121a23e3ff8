"""Catalogue and records: datasets, lookup, export, verify, runs."""
from __future__ import annotations

import json
import os
from pathlib import Path

from base import times
from base.errors import ConfigError
from base.i18n import both, t
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
        table(both("cli.title.datasets"), rows, ["dataset", "title", "sharing", "update_cycle", "version",
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
        table(both("cli.title.records_held", key=key), rows,
              ["record_id", "title", "licence_number", "holder_name", "status", "disputed", "valid_to", "version"],
              {"status": "record", "disputed": "bool"})
    else:
        print(t("cli.msg.no_records", key=key))
    return 0


def cmd_export(args) -> int:
    bundle = _requests().bundle(_token(args), args.department, args.purpose, args.record_id)
    text = json.dumps(bundle, ensure_ascii=False, indent=1)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        msg = {"record_id": args.record_id, "written": args.output, "disclosure": bundle.get("disclosure")}
        print(json.dumps(msg) if args.json else t("cli.msg.bundle_written", record_id=args.record_id, path=args.output)
              + ("" if bundle.get("verifiable", True) else t("cli.msg.bundle_partial")))
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
           t("cli.msg.step7_skipped"))
    return 0


def cmd_runs(args) -> int:
    led = ledger()
    led.reap_orphans(args.source)     # runs whose `exchange run` process is gone: failed
    rows = led.runs(args.source, args.limit)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1, default=times.json_default))
    else:
        table(both("cli.title.runs"), rows, ["id", "source_id", "state", "extracted", "accepted",
                                             "quarantined", "checked", "carried", "version", "started_at",
                                             "message"], {"state": "run"})
    return 0


def consumer(sp):
    """Asks as a department, under the API's rules (catalog/serving/consumer.py), audited with the OS account."""
    sp.add_argument("--key", help=both("cli.arg.key"))
    sp.add_argument("--department", help=both("cli.arg.department"))
    sp.add_argument("--purpose", help=both("cli.arg.purpose"))
    return sp


def register(add) -> None:
    add("datasets", cmd_datasets, both("cli.help.datasets"))
    consumer(add("lookup", cmd_lookup, both("cli.help.lookup"))).add_argument("holder_id")
    sp = add("export", cmd_export, both("cli.help.export"))
    sp.add_argument("record_id")
    sp.add_argument("-o", "--output", help=both("cli.arg.output"))
    consumer(sp)
    sp = add("verify", cmd_verify, both("cli.help.verify"))
    sp.add_argument("file")
    sp.add_argument("--jwks", help=both("cli.arg.jwks"))
    sp.add_argument("--key-status", help=both("cli.arg.key_status"))
    sp.add_argument("--online", action="store_true", help=both("cli.arg.online"))
    sp = add("runs", cmd_runs, both("cli.help.runs"))
    sp.add_argument("--source", help=both("cli.arg.source"))
    sp.add_argument("--limit", type=int, default=20, help=both("cli.arg.limit"))
