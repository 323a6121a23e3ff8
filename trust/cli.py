"""`exchange-verify BUNDLE --jwks JWKS` (or `python -m trust verify …`): steps 1-6 offline, as
`exchange verify` does, on a machine with nothing of the exchange but this package.
Exit codes: 0 verified, 8 verification failed (the numbered step), 2 bad usage or unreadable file."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trust.errors import ExchangeError, InputError
from trust.verify import KEY_STATUS_FILE, VERIFY_STEPS, Json, VerifiedBundle, read_key_status, verify_bundle

OFFLINE_HINT = "step 8 (record still valid) was not run: ask the exchange (GET /v1/records/{id}/status)"


def load(bundle_path: str | Path, jwks_path: str | Path,
         status_path: str | Path | None = None) -> tuple[Json, Json, str | None]:
    """The bundle, the JWKS and the key status document (default: key-status.jws beside the JWKS)."""
    jwks_path = Path(jwks_path)
    status_path = Path(status_path) if status_path else jwks_path.with_name(KEY_STATUS_FILE)
    try:
        bundle = json.loads(Path(bundle_path).read_text(encoding="utf-8"))
        jwks = json.loads(jwks_path.read_text(encoding="utf-8"))
        key_status = read_key_status(status_path)
    except FileNotFoundError as exc:
        raise InputError(f"cannot read {exc.filename}: give the bundle file and --jwks PATH") from None
    except OSError as exc:
        raise InputError(f"cannot read {exc.filename}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not JSON: {exc}") from None
    return bundle, jwks, key_status


def report(result: VerifiedBundle, as_json: bool, hint: str = OFFLINE_HINT) -> None:
    """What was verified, as text or one JSON object; `hint` is said when step 8 did not run."""
    ran = [(n, name) for n, name in VERIFY_STEPS if n in result.steps]
    head, licence = result.head, result.record.get("licence_number")
    if as_json:
        print(json.dumps({"verified": True, "record_id": result.record_id, "licence_number": licence,
                          "leaf_index": result.leaf_index, "dataset": head["dataset"],
                          "version": head["version"], "kid": result.kid,
                          "steps": [name for _, name in ran], "status": result.status,
                          "key_compromised": result.compromised_key is not None,
                          "unsigned": result.unsigned}, ensure_ascii=False))
        return
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
        print("  " + hint.replace("{id}", result.record_id))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="exchange-verify", description=__doc__.splitlines()[0])
    p.add_argument("file", help="the record bundle (exchange export, or GET /v1/records/{id}/bundle)")
    p.add_argument("--jwks", required=True, help="the exchange's public key set (jwks.json)")
    p.add_argument("--key-status", help="signed key status document (default: key-status.jws "
                                        "beside the JWKS, if present)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["verify"]:        # `python -m trust verify …`, like `exchange verify …`
        argv = argv[1:]
    args = parser().parse_args(argv)
    try:
        bundle, jwks, key_status = load(args.file, args.jwks, args.key_status)
        report(verify_bundle(bundle, jwks, key_status), args.json)
    except BrokenPipeError:
        sys.stderr.close()
        return 0
    except ExchangeError as exc:
        if args.json:
            print(json.dumps({"error": type(exc).__name__, "message": str(exc)}, ensure_ascii=False))
        print(f"exchange-verify: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0
