"""A run's Great Expectations Data Docs, served from its staging folder, never outside it."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from api.dashboard.auth import AuditorDep
from api.dashboard.render import error

router = APIRouter(prefix="/dashboard", include_in_schema=False)
# GX's pages run their own scripts: sandboxed, they cannot act as the dashboard's origin
DOCS_HEADERS = {"Content-Security-Policy": "sandbox allow-scripts allow-popups; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def docs_file(staging: Path, index: str | None, sub: str) -> Path | None:
    """The file `sub` of the Data Docs whose index.html is `index`, if it is inside both the
    docs folder and the staging area (symlinks resolved); else None."""
    if not index:
        return None
    root = Path(index).parent.resolve()
    if not root.is_relative_to(staging.resolve()):
        return None
    target = (root / (sub or "index.html")).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        return None
    return target


@router.get("/runs/{run_id}/docs/{sub:path}")
async def run_docs(request: Request, run_id: int, sub: str, caller: AuditorDep):
    catalog = request.app.state.consumer.catalog
    index = catalog.run_quality(run_id).get("data_docs")
    target = docs_file(request.app.state.settings.staging_dir, index, sub)
    if target is None:
        return error(request, 404, "No such Data Docs page",
                     f"run {run_id} has no Data Docs file {sub!r} (runs that failed before "
                     "validation have none)")
    return FileResponse(target, headers=DOCS_HEADERS)
