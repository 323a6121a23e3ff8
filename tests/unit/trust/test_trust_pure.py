"""The trust core (trust/) is pure: the standard library, rfc8785, joserfc and cryptography only,
so it ships alone as the offline verifier (verifier/pyproject.toml)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

TRUST = Path(__file__).resolve().parents[3] / "trust"
ALLOWED = {"rfc8785", "joserfc", "cryptography", "trust"}


def test_trust_imports_only_the_standard_library_and_the_crypto_packages():
    for path in TRUST.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            for name in names:
                top = name.split(".")[0]
                assert top in ALLOWED or top in sys.stdlib_module_names, f"{path.name} imports {name}"


def test_importing_the_verifier_loads_nothing_of_the_exchange():
    code = "import sys, trust.verify, trust.cli; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                cwd=TRUST.parent).stdout.split())
    heavy = {"sqlalchemy", "airflow", "great_expectations", "pyarrow", "numpy", "pandas",
             "exchange", "catalog", "api", "schemas", "connectors", "quality"}
    assert not loaded & heavy, loaded & heavy


def test_exchange_and_trust_share_one_verification_error():
    from base.errors import ExchangeError, NotFound, VerificationError
    from trust import errors

    assert VerificationError is errors.VerificationError and NotFound is errors.NotFound
    assert issubclass(VerificationError, ExchangeError)
    assert (VerificationError.exit_code, VerificationError.status) == (8, 400)
