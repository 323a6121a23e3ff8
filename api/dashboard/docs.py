"""A run's Great Expectations Data Docs, served from the store (its run's staging/ prefix), never
outside it.

GX's pages run their own scripts and pull styles from CDNs, so they are served sandboxed
(an opaque origin: they cannot act as the dashboard). A sandboxed page's requests carry no
SameSite=Strict cookie, so its URLs carry a token instead: signed, for one run, bound to the
session (its catalogue id, not its secret; checked live on every request, so a logout ends it
too) and expiring with it; never sent onwards as a Referer."""
from __future__ import annotations

import mimetypes
import posixpath

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from api.dashboard import session
from api.dashboard.auth import AuditorDep
from api.dashboard.render import error, language, page
from base import i18n
from base.errors import Unauthenticated
from base.storage import Store
from catalog.serving import dashboard_sessions

router = APIRouter(prefix="/dashboard", include_in_schema=False)
DOCS_HEADERS = {"Content-Security-Policy": "sandbox allow-scripts allow-popups; frame-ancestors 'none'",
                "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store"}


STAGING = "staging/"


def docs_file(store: Store, index: str | None, sub: str) -> str | None:
    """The store key of the file `sub` of the Data Docs whose index.html is the key `index`, if
    it is inside both the docs folder and the store's staging/ prefix and exists; else None."""
    if not index or posixpath.basename(index) != "index.html":
        return None
    root = posixpath.normpath(posixpath.dirname(index))
    if not root.startswith(STAGING) or ".." in root.split("/"):
        return None
    target = posixpath.normpath(posixpath.join(root, sub or "index.html"))
    if not target.startswith(root + "/") or not store.exists(target):
        return None
    local, folder = store.local_path(target), store.local_path(root)
    if local is not None and folder is not None and not local.resolve().is_relative_to(folder.resolve()):
        return None                                   # a link out of the docs folder
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
    index, store = _index(request, run_id), request.app.state.settings.store
    if index is None or docs_file(store, index, "index.html") is None:
        return _missing(request, run_id)
    root = posixpath.dirname(index)
    token = session.make(request.app.state.dashboard_secret, request.state.dashboard_session, f"docs:{run_id}")
    base = f"/dashboard/runs/{run_id}/docs/{token}/"
    pages = [{"name": tuple(k[len(root) + len("/validations/"):].split("/")), "url": base + k[len(root) + 1:]}
             for k in store.list(f"{root}/validations") if k.endswith(".html")]
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
    store = request.app.state.settings.store
    target = docs_file(store, _index(request, run_id), sub)
    if target is None:
        return _missing(request, run_id, sub)
    media = mimetypes.guess_type(target)[0] or "application/octet-stream"
    return Response(store.read_bytes(target), media_type=media, headers=DOCS_HEADERS)
