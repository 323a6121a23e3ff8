"""Three whole exchanges (district, city, province) on 127.0.0.1 for the federation tests:
demo/exchanges.py builds them; see three_exchanges() for what each holds."""
from __future__ import annotations

import socket

import pytest

from demo.exchanges import BIN, Federation, three_exchanges


def _absent() -> str | None:
    if not (BIN / "exchange").exists():
        return f"没有 exchange 命令 (no exchange CLI): {BIN / 'exchange'}; run ./run setup"
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
    except OSError as exc:
        return f"127.0.0.1 上没有空闲端口 (no free port on 127.0.0.1): {exc}"
    return None


@pytest.fixture(scope="session")
def exchanges(tmp_path_factory) -> Federation:
    if (why := _absent()):
        pytest.skip(why)
    fed = three_exchanges(tmp_path_factory.mktemp("federation"))
    print(f"\nfederation harness set up in {fed.setup_seconds:.1f} s; notes: {fed.notes or 'none'}")
    yield fed
    fed.close()
