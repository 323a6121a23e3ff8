"""A run's Great Expectations Data Docs, served from its staging folder, never outside it.

GX's pages run their own scripts and pull styles from CDNs, so they are served sandboxed
(an opaque origin: they cannot act as the dashboard). A sandboxed page's requests carry no
SameSite=Strict cookie, so its URLs carry a token instead: signed, for one run, bound to the
session (its catalogue id, not its secret; checked live on every request, so a logout ends it
too) and expiring with it; never sent onwards as a Referer."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse

from api.dashboard import session
from api.dashboard.auth import AuditorDep
from api.dashboard.render import error, language, page
from base import i18n
from base.errors import Unauthenticated
from catalog.serving import dashboard_sessions

router = APIRouter(prefix="/dashboard", include_in_schema=False)
DOCS_HEADERS = {"Content-Security-Policy": "sandbox allow-scripts allow-popups; frame-ancestors 'none'",
                "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store"}


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


def _index(request: Request, run_id: int) -> str | None:
    return request.app.state.ledger.run_quality(run_id).get("data_docs")


def _missing(request: Request, run_id: int, sub: str = ""):
    lang = language(request)
    return error(request, 404, i18n.t("docs.missing_title", lang),
                 i18n.t("docs.missing", lang, run=run_id, sub=f" {sub!r}" if sub else ""))


@router.get("/runs/{run_id}/docs/")
async def run_docs_list(request: Request, run_id: int, caller: AuditorDep):
    """Our own list of the run's Data Docs pages (readable offline, unlike GX's index)."""
    index = _index(request, run_id)
    if docs_file(request.app.state.settings.staging_dir, index, "index.html") is None:
        return _missing(request, run_id)
    root = Path(index).parent
    token = session.make(request.app.state.dashboard_secret, request.state.dashboard_session, f"docs:{run_id}")
    base = f"/dashboard/runs/{run_id}/docs/{token}/"
    pages = [{"name": p.relative_to(root / "validations").parts, "url": base + p.relative_to(root).as_posix()}
             for p in sorted((root / "validations").rglob("*.html"))]
    return page(request, "docs.html", {"run_id": run_id, "index_url": base + "index.html", "pages": pages})


@router.get("/runs/{run_id}/docs/{token}/{sub:path}")
async def run_docs(request: Request, run_id: int, token: str, sub: str):
    row = session.read(request.app.state.dashboard_secret, token, f"docs:{run_id}")
    key_id = dashboard_sessions.key_of(request.app.state.consumer.engine, row) if row else None
    try:
        if key_id is None or request.app.state.consumer.access.current(key_id).role != "auditor":
            raise Unauthenticated("bad docs token")
    except Unauthenticated:
        return RedirectResponse(f"/dashboard/runs/{run_id}/docs/", status_code=303)
    target = docs_file(request.app.state.settings.staging_dir, _index(request, run_id), sub)
    if target is None:
        return _missing(request, run_id, sub)
    return FileResponse(target, headers=DOCS_HEADERS)
