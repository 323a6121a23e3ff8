"""`exchange serve`: the consumer API under uvicorn (OpenAPI at /docs and /openapi.json)."""
from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path

from api.request_metrics import MULTIPROC_ENV
from api.shared_buckets import create


def cmd_serve(args) -> int:
    import uvicorn  # lazy: CLI start (the web server)

    buckets, secret_made, counts = None, False, None
    if args.workers > 1:        # one rate limit per department for all workers together
        fd, name = tempfile.mkstemp(prefix="exchange-api-buckets-")
        os.close(fd)
        buckets = create(Path(name))
        os.environ["EXCHANGE_API_BUCKETS"] = str(buckets)
        if not os.environ.get("EXCHANGE_DASHBOARD_SECRET"):   # one dashboard secret for all workers
            os.environ["EXCHANGE_DASHBOARD_SECRET"] = secrets.token_urlsafe(32)
            secret_made = True
        if not os.environ.get(MULTIPROC_ENV):    # /metrics adds up every worker's request counts
            counts = tempfile.mkdtemp(prefix="exchange-api-metrics-")
            os.environ[MULTIPROC_ENV] = counts
    try:
        uvicorn.run("api.app:create_app", factory=True, host=args.host, port=args.port,
                    workers=args.workers, log_level=args.log_level, access_log=args.access_log,
                    loop=args.loop)
    finally:
        if buckets is not None:
            buckets.unlink(missing_ok=True)
            os.environ.pop("EXCHANGE_API_BUCKETS", None)
        if secret_made:
            os.environ.pop("EXCHANGE_DASHBOARD_SECRET", None)
        if counts is not None:
            shutil.rmtree(counts, ignore_errors=True)
            os.environ.pop(MULTIPROC_ENV, None)
    return 0


def register(add) -> None:
    sp = add("serve", cmd_serve, "run the consumer API (catalogue from EXCHANGE_CATALOG_URL)")
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, default=8000)
    sp.add_argument("--workers", type=int, default=1)
    sp.add_argument("--log-level", default="warning")
    sp.add_argument("--access-log", action="store_true", help="log each request line")
    sp.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"])
