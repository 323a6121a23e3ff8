"""Three whole exchanges (district, city, province) on 127.0.0.1 for the federation tests:
demo/exchanges.py builds them (three_exchanges() says what each holds). Catalogues are SQLite
files; EXCHANGE_TEST_FEDERATION_PG=1 puts each on a PostgreSQL database of its own."""
from __future__ import annotations

import os
import socket
from contextlib import ExitStack

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
    with ExitStack() as stack:
        urls = None
        if os.environ.get("EXCHANGE_TEST_FEDERATION_PG") == "1":
            from tests.integration.conftest import fresh_pg_database
            urls = {n: stack.enter_context(fresh_pg_database(f"fed_{n}")) for n in ("district", "city", "province")}
        fed = three_exchanges(tmp_path_factory.mktemp("federation"), urls)
        stack.callback(fed.close)
        print(f"\nfederation harness set up in {fed.setup_seconds:.1f} s; notes: {fed.notes or 'none'}")
        yield fed
